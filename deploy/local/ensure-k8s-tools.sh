#!/usr/bin/env bash
# For tests/deploy: kustomize, built from the Go module proxy, and the prometheus-operator's
# CRDs (ServiceMonitor, PrometheusRule, with their OpenAPI schemas), from the same proxy.
# Both land in .tools/ and are reused while their versions stay the same.
set -euo pipefail

TOOLS="${TOOLS:-$PWD/.tools}"
KUSTOMIZE_VERSION="${KUSTOMIZE_VERSION:-v5.8.2}"  # the newest that Go 1.26 builds
PROMETHEUS_OPERATOR_VERSION="${PROMETHEUS_OPERATOR_VERSION:-v0.85.0}"

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

crds="$TOOLS/crds/$PROMETHEUS_OPERATOR_VERSION"
if [ ! -f "$crds/monitoring.coreos.com_prometheusrules.yaml" ]; then
    echo "fetching the prometheus-operator $PROMETHEUS_OPERATOR_VERSION CRDs" >&2
    module="$(cd "$TOOLS" && GOTOOLCHAIN=local "$GO" mod download -json \
        "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION")"
    dir="$(python3 -c 'import json, sys; print(json.loads(sys.stdin.read())["Dir"])' <<<"$module")"
    mkdir -p "$crds"
    for kind in servicemonitors prometheusrules; do
        cp "$dir/example/prometheus-operator-crd/monitoring.coreos.com_$kind.yaml" "$crds/"
    done
fi
