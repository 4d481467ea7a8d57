#!/usr/bin/env bash
# For tests: SeaweedFS's `weed` (an S3-compatible store), built from the Go module proxy into
# .tools/bin, and reused while its pinned version stays the same. `go install` refuses the
# module (its go.mod has a replace directive), so it is built inside a small module of our own,
# with the module and build caches kept in .tools/go so that a warm run builds nothing.
set -euo pipefail

TOOLS="${TOOLS:-$PWD/.tools}"
# `weed version` prints the release (4.53), not this pseudo-version: the stamp file records it.
SEAWEEDFS_VERSION="${SEAWEEDFS_VERSION:-v0.0.0-20261109003541-7506e5f91cd6}"
WEED="$TOOLS/bin/weed"
STAMP="$WEED.version"

if [ -x "$WEED" ] && [ "$(cat "$STAMP" 2>/dev/null || true)" = "$SEAWEEDFS_VERSION" ]; then
    exit 0
fi

GO="$(command -v go || true)"
[ -n "$GO" ] || [ ! -x /usr/local/go/bin/go ] || GO=/usr/local/go/bin/go
if [ -z "$GO" ]; then
    echo "ensure-seaweedfs: no Go toolchain (SeaweedFS needs a recent one, not Debian's 1.19)" >&2
    exit 1
fi

echo "building seaweedfs $SEAWEEDFS_VERSION (a cold build takes minutes)" >&2
export GOPATH="$TOOLS/go"
export GOMODCACHE="$TOOLS/go/mod"
export GOCACHE="$TOOLS/go/cache"
export GOTOOLCHAIN=local
# -modcacherw: leave the module cache writable, so `rm -rf .tools` (make clean) works.
export GOFLAGS="-mod=mod -modcacherw -buildvcs=false"

MODULE="$TOOLS/seaweedfs-module"
mkdir -p "$MODULE" "$TOOLS/bin"
cd "$MODULE"
[ -f go.mod ] || "$GO" mod init tools >/dev/null 2>&1
"$GO" get "github.com/seaweedfs/seaweedfs/weed@$SEAWEEDFS_VERSION"
"$GO" build -o "$WEED.tmp" github.com/seaweedfs/seaweedfs/weed
mv -f "$WEED.tmp" "$WEED"
echo "$SEAWEEDFS_VERSION" >"$STAMP"
"$WEED" version >&2
