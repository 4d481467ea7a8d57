#!/usr/bin/env bash
# For tests/deploy: kustomize, built from the Go module proxy into .tools/bin, and reused
# while its version stays the same. (The prometheus-operator's schemas come from PyPI, with
# the dev extra: cloudcoil-models-prometheus-operator.)
set -euo pipefail

TOOLS="${TOOLS:-$PWD/.tools}"
KUSTOMIZE_VERSION="${KUSTOMIZE_VERSION:-v5.8.2}"  # the newest that Go 1.26 builds

GO="$(command -v go || true)"
[ -n "$GO" ] || [ ! -x /usr/local/go/bin/go ] || GO=/usr/local/go/bin/go
if [ -z "$GO" ]; then
    # Debian's Go is 1.19: the last kustomize it builds is v5.0.3.
    bash "$(dirname "$0")/ensure-tools.sh" go:golang-go
    GO="$(command -v go)"
    KUSTOMIZE_VERSION=v5.0.3
fi

if [ "$("$TOOLS/bin/kustomize" version 2>/dev/null || true)" != "$KUSTOMIZE_VERSION" ]; then
    echo "building kustomize $KUSTOMIZE_VERSION" >&2
    GOBIN="$TOOLS/bin" GOTOOLCHAIN=local "$GO" install \
        "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
fi
