#!/bin/sh
# The official rabbitmq image's defaults, in short: the console on 15672, and (unless definitions name the
# users) a default user RABBITMQ_DEFAULT_USER / RABBITMQ_DEFAULT_PASS of RABBITMQ_DEFAULT_VHOST that may log in
# from other hosts; then run the command given.
set -eu
{
    echo "management.tcp.port = 15672"
    echo "loopback_users = none"
    echo "default_user = ${RABBITMQ_DEFAULT_USER:-guest}"
    echo "default_pass = ${RABBITMQ_DEFAULT_PASS:-guest}"
    echo "default_vhost = ${RABBITMQ_DEFAULT_VHOST:-/}"
} >/etc/rabbitmq/conf.d/10-defaults.conf
exec "$@"
