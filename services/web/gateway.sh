#!/usr/bin/env bash
# The gateway as `make run` and the end-to-end tests start it: nginx in the foreground, its config
# rendered from the templates into a private prefix directory. Ports come from the same variables
# the services read.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
prefix="$(mktemp -d -t contacts-gateway.XXXXXX)"
chmod 755 "$prefix"
export LISTEN_PORT="${GATEWAY_PORT:-8080}"
export COMMAND_API="127.0.0.1:${COMMAND_API_PORT:-8001}"
export QUERY_API="127.0.0.1:${QUERY_API_PORT:-8002}"
export NOTIFIER="127.0.0.1:${NOTIFIER_PORT:-8003}"
export WEB_ROOT="${WEB_ROOT:-$here/dist}"
variables='${LISTEN_PORT} ${COMMAND_API} ${QUERY_API} ${NOTIFIER} ${WEB_ROOT}'
envsubst "$variables" <"$here/nginx/contacts.conf.template" >"$prefix/contacts.conf"
envsubst "$variables" <"$here/nginx/nginx.conf.template" >"$prefix/nginx.conf"
nginx -p "$prefix" -c nginx.conf -e stderr -g 'daemon off;' &
trap 'kill -TERM $! 2>/dev/null; wait $!; rm -rf "$prefix"' EXIT INT TERM
wait $!
