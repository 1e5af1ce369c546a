#!/usr/bin/env bash
# The gateway as `make run` and the end-to-end tests start it: nginx in the foreground, its config
# rendered from the templates into a private prefix directory. Ports come from the same variables
# the services read.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
prefix="$(mktemp -d -t contacts-gateway.XXXXXX)"
chmod 755 "$prefix"
export LISTEN_PORT="${GATEWAY_PORT:-8080}"
export COMMAND_API="${COMMAND_API_HOST:-127.0.0.1}:${COMMAND_API_PORT:-8001}"
export QUERY_API="${QUERY_API_HOST:-127.0.0.1}:${QUERY_API_PORT:-8002}"
export NOTIFIER="${NOTIFIER_HOST:-127.0.0.1}:${NOTIFIER_PORT:-8003}"
export WEB_ROOT="${WEB_ROOT:-$here/dist}"
# With a DNS server to ask (Docker's: 127.0.0.11), nginx >= 1.27.3 re-resolves the hosts above every few
# seconds, so it follows the instances of a scaled service as they come and go; an older nginx (Debian 12's
# 1.22) resolves each name once, at start, to every instance there is then.
if [[ -n "${GATEWAY_RESOLVER:-}" ]]; then
  version="$(nginx -v 2>&1)" && version="${version##*/}"
  newest="$(printf '%s\n' 1.27.3 "$version" | sort -V | tail -n1)"
  export RESOLVER="resolver ${GATEWAY_RESOLVER} valid=5s ipv6=off;" RESOLVE=""
  [[ "$newest" == "$version" ]] && RESOLVE="resolve"
else
  export RESOLVER="" RESOLVE=""
fi
variables='${LISTEN_PORT} ${COMMAND_API} ${QUERY_API} ${NOTIFIER} ${WEB_ROOT} ${RESOLVER} ${RESOLVE}'
envsubst "$variables" <"$here/nginx/contacts.conf.template" >"$prefix/contacts.conf"
envsubst "$variables" <"$here/nginx/nginx.conf.template" >"$prefix/nginx.conf"
nginx -p "$prefix" -c nginx.conf -e stderr -g 'daemon off;' &
trap 'kill -TERM $! 2>/dev/null; wait $!; rm -rf "$prefix"' EXIT INT TERM
wait $!
