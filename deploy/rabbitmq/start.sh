#!/bin/sh
# Render RabbitMQ's definitions (deploy/rabbitmq/definitions.json: the vhost, the topology, one user per service
# and the operator, each with only its permissions) with each user's password hashed from the environment, then
# run the command given (in compose: the image's own entrypoint, whose node loads the file, rabbitmq.conf).
#
# RabbitMQ imports a user's password hash, never the password, so the hash is made here, at each start, with
# the node's own Erlang: rabbit_password_hashing_sha256 is base64(salt ++ sha256(salt ++ password)) with a
# random 4-byte salt. No password is in the repository or the image; a changed one takes effect at restart.
#
#   RABBITMQ_<USER>_PASSWORD   for USER in OPERATOR RELAY COMMANDS HISTORY NOTIFIER (all required)
#   CONTACTS_DEFINITIONS       where to write the file (default /etc/rabbitmq/definitions.json)
#   CONTACTS_ERLANG_COOKIE     a cluster's node only: the cookie the nodes share (below)
set -eu

here=$(dirname "$0")
out=${CONTACTS_DEFINITIONS:-/etc/rabbitmq/definitions.json}

password_hash() {
    PASSWORD=$1 erl -noshell -eval '
        Salt = crypto:strong_rand_bytes(4),
        Password = unicode:characters_to_binary(os:getenv("PASSWORD")),
        io:put_chars(base64:encode(<<Salt/binary, (crypto:hash(sha256, <<Salt/binary, Password/binary>>))/binary>>)),
        halt().' </dev/null
}

rendered=$(cat "$here/definitions.json")
for user in OPERATOR RELAY COMMANDS HISTORY NOTIFIER; do
    password=$(printenv "RABBITMQ_${user}_PASSWORD") || { echo "RABBITMQ_${user}_PASSWORD is not set" >&2; exit 1; }
    [ -n "$password" ] || { echo "RABBITMQ_${user}_PASSWORD is empty" >&2; exit 1; }
    hash=$(password_hash "$password")  # base64: no character of it means anything to sed between |s
    rendered=$(printf '%s\n' "$rendered" | sed "s|@${user}_PASSWORD_HASH@|$hash|")
done

umask 077
printf '%s\n' "$rendered" >"$out"
if id rabbitmq >/dev/null 2>&1; then chown rabbitmq:rabbitmq "$out"; fi

# A node of a cluster (docker-compose.cluster.yml). The cookie the nodes share, CONTACTS_ERLANG_COOKIE (.env's
# RABBITMQ_ERLANG_COOKIE: under that name the CLI tools would warn it is deprecated, on stdout), in the file Erlang
# reads in the rabbitmq user's home, where the node and the CLI tools (the health check) find it.
if [ -n "${CONTACTS_ERLANG_COOKIE:-}" ]; then
    cookie=/var/lib/rabbitmq/.erlang.cookie
    rm -f "$cookie"
    printf '%s' "$CONTACTS_ERLANG_COOKIE" >"$cookie"
    chmod 400 "$cookie"
    if id rabbitmq >/dev/null 2>&1; then chown rabbitmq:rabbitmq "$cookie"; fi
fi
# Once the node has joined and started, every quorum queue gets a member on it (RabbitMQ 3.10 never adds one by
# itself): the queues the first node declared before the others joined end up on all three (SPEC §10).
if [ -e /etc/rabbitmq/conf.d/30-cluster.conf ]; then
    (
        tries=0
        until rabbitmqctl --quiet await_startup >/dev/null 2>&1; do # it fails at once while the node is not up yet
            tries=$((tries + 1))
            [ "$tries" -lt 300 ] || exit 1
            sleep 2
        done
        rabbitmq-queues --quiet grow "rabbit@$(hostname)" all
    ) </dev/null &
fi
exec "$@"
