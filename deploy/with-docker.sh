#!/usr/bin/env bash
# Run a command (the tests) with a Docker engine for the tests that need one (tests/compose, and testcontainers
# where TEST_DATABASE_URL is unset): install what is missing (docker.io, docker-compose, debootstrap, with
# apt-get as root), start dockerd when none answers, build the stand-in images (deploy/local-images/build.sh),
# run the command, then stop the dockerd started here, and only it. Where any of that cannot be done the command
# runs all the same, and the tests that need Docker skip, saying why.
#
#   deploy/with-docker.sh pytest tests/compose
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
say() { echo "with-docker: $*" >&2; }

missing=()
for tool in docker:docker.io docker-compose:docker-compose debootstrap:debootstrap; do
  command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
if ((${#missing[@]})); then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    say "installing ${missing[*]}"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } >/dev/null \
      || say "could not install ${missing[*]}"
  else
    say "missing ${missing[*]} (install them as root)"
  fi
fi

started=""
if command -v docker >/dev/null && ! docker info >/dev/null 2>&1 && command -v dockerd >/dev/null && [[ $(id -u) == 0 ]]; then
  log="${TMPDIR:-/tmp}/contacts-dockerd.log"
  say "starting dockerd (log: $log)"
  dockerd --storage-driver=overlay2 >"$log" 2>&1 &
  started=$!
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
fi
stop_started() {
  if [[ -n "$started" ]]; then
    say "stopping the dockerd started here"
    kill -TERM "$started" 2>/dev/null && wait "$started"
  fi
}
trap stop_started EXIT

if docker info >/dev/null 2>&1; then
  "$here/local-images/build.sh" || say "the stand-in images could not be built: the tests that need them skip"
else
  say "no Docker engine answers: the tests that need one skip"
fi
"$@"
