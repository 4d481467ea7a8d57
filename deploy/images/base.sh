#!/usr/bin/env bash
# A base image made from Debian's packages, for machines where no registry is reachable:
# mmdebstrap writes a bookworm root filesystem holding the packages named (and what
# Debian's essential set needs), buildah turns it into an image in podman's storage.
# Skipped when podman already has the image; `podman rmi IMAGE` to make it anew.
#
#   deploy/images/base.sh IMAGE PACKAGE[,PACKAGE...]
#
# No apt in the image (the "essential" variant); /usr merged by mmdebstrap's own hook, so
# Debian's usrmerge package, and the 46 MB of perl it needs, stay out; no documentation,
# manual pages or locales (the JRE's update-alternatives wants the man1 directory, so it is
# made, empty). The
# sources are Debian's own, with its security updates; nothing of this machine's apt, pip
# or certificate configuration goes in: ca-certificates, where named, is Debian's bundle.
set -euo pipefail

image="$1"
packages="$2"

if podman image exists "$image"; then
    exit 0
fi

work="$(mktemp -d)"
container=""
cleanup() {
    [ -z "$container" ] || buildah rm "$container" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

echo "base image $image: mmdebstrap bookworm with $packages" >&2
mmdebstrap --quiet --variant=essential --include="$packages" \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --setup-hook='mkdir -p "$1/usr/share/man/man1"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    bookworm "$work/root.tar" \
    "deb http://deb.debian.org/debian bookworm main" \
    "deb http://deb.debian.org/debian bookworm-updates main" \
    "deb http://deb.debian.org/debian-security bookworm-security main"

container="$(buildah from scratch)"
buildah add --quiet "$container" "$work/root.tar" /
buildah config --cmd /bin/sh \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --label org.opencontainers.image.description="Debian bookworm (mmdebstrap, essential): $packages" \
    "$container"
buildah commit --quiet --rm "$container" "$image" >/dev/null
container=""
