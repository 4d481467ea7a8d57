#!/usr/bin/env bash
# `make image`: the gateway's image and the test engine's, built with podman into its
# default storage (what `podman images` lists):
#   localhost/engine-gateway:<the project's version>
#   localhost/engine-gateway-engine:<engine>-<its version>   (the tag deploy/k8s names)
# on base images made from Debian's packages (base.sh). Prints the two names, last.
#
#   deploy/images/build.sh [operaton|camunda]      PYTHON: the venv's python (wheels)
#
# Nothing is downloaded inside a build: the wheels are built here (the versions the tests
# ran with, from `pip freeze`) and the engine's jar by Maven (`make engine`).
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
engine="${1:-operaton}"
python="${PYTHON:-$root/.venv/bin/python}"
export CONTAINERS_CONF="$root/deploy/images/containers.conf"

bash "$root/deploy/local/ensure-tools.sh" podman:podman buildah:buildah mmdebstrap:mmdebstrap \
    runc:runc /usr/libexec/podman/catatonit:catatonit /usr/lib/podman/netavark:netavark \
    /usr/lib/podman/aardvark-dns:aardvark-dns iptables:iptables

version="$("$python" -c 'import tomllib, sys; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' "$root/pyproject.toml")"
engine_version="$(sed -n "s|.*<$engine.version>\(.*\)</$engine.version>.*|\1|p" "$root/deploy/engine/pom.xml")"
jar="$root/deploy/engine/target/engine-$engine.jar"
[ -n "$engine_version" ] || { echo "no <$engine.version> in deploy/engine/pom.xml" >&2; exit 2; }
[ -f "$jar" ] || { echo "$jar is missing: make engine ENGINE=$engine" >&2; exit 2; }

python_base=localhost/engine-gateway-base-python:bookworm
jre_base=localhost/engine-gateway-base-jre:bookworm
bash "$root/deploy/images/base.sh" "$python_base" python3,ca-certificates
bash "$root/deploy/images/base.sh" "$jre_base" openjdk-17-jre-headless

PYTHON="$python" bash "$root/deploy/images/wheelhouse.sh"

gateway_image="localhost/engine-gateway:$version"
engine_image="localhost/engine-gateway-engine:$engine-$engine_version"
# --format docker keeps the HEALTHCHECK (OCI images have none); --pull=never: the bases
# are local, and no registry is asked.
# The label marks this script's images: a rebuild leaves the one it replaced untagged, and
# those (and only those) are pruned after.
label=io.github.engine-gateway.built-by=deploy/images/build.sh
podman build --quiet --pull=never --format docker --layers=false --label "$label" \
    --build-arg BASE="$python_base" --tag "$gateway_image" "$root" >/dev/null
podman build --quiet --pull=never --format docker --layers=false --label "$label" \
    --build-arg BASE="$jre_base" --build-arg ENGINE="$engine" \
    --tag "$engine_image" "$root/deploy/engine" >/dev/null
podman image prune --force --filter "label=$label" >/dev/null
echo "$gateway_image"
echo "$engine_image"
