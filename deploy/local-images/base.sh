#!/usr/bin/env bash
# contacts-live/base:bookworm: a minimal Debian bookworm made with debootstrap from the mirror this machine's apt
# already uses, imported into Docker. It trusts the certificate authorities this machine trusts (its
# /etc/ssl/certs/ca-certificates.crt), so that apt, pip and npm in a build reach what this machine reaches. The stand-ins for the official images (deploy/local-images/*.Dockerfile)
# are built FROM it on machines that cannot pull from a registry. Made once and kept by its tag; about 40 s.
set -euo pipefail
tag=${BASE_IMAGE:-contacts-live/base:bookworm}
if docker image inspect "$tag" >/dev/null 2>&1; then exit 0; fi

# The first Debian mirror apt is configured with (deb822 .sources files or one-line .list files).
mirror=$(sed -n -E 's/^URIs:[[:space:]]*(\S+).*/\1/p; s/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?(\S+)[[:space:]]+bookworm\b.*/\2/p' \
  /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
  | grep -E '/debian/?$' | head -n1) || true
[[ -n "$mirror" ]] || { echo "no Debian mirror found in /etc/apt/sources.list*" >&2; exit 1; }

root=$(mktemp -d -t contacts-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "debootstrap bookworm from $mirror into $root" >&2
debootstrap --variant=minbase --include=ca-certificates bookworm "$root" "$mirror" >"$root.log" 2>&1 || { tail -20 "$root.log" >&2; exit 1; }
rm -f "$root.log"
# apt inside the image: the same mirror and its updates; no caches kept.
printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$mirror" "$mirror" >"$root/etc/apt/sources.list"
# Like Debian's own slim images: no documentation, manual pages or translations, now or from later installs.
cat >"$root/etc/dpkg/dpkg.cfg.d/slim" <<'SLIM'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
SLIM
find "$root/usr/share/doc" -mindepth 2 -not -name copyright -not -type d -delete
rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/*
cp /etc/ssl/certs/ca-certificates.crt "$root/usr/local/share/ca-certificates/this-machine.crt"
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import --change 'CMD ["bash"]' - "$tag" >/dev/null
echo "made $tag" >&2
