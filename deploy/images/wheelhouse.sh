#!/usr/bin/env bash
# build/wheelhouse: every wheel the gateway's image installs, built on the host so that
# nothing is downloaded inside the image build (`make wheelhouse`; `make image` runs it).
# The project's own wheel, its dependencies at the versions the tests ran with (`pip
# freeze` of the venv, as constraints), and pip's own wheel, which the build runs from.
# The Dockerfile copies build/wheelhouse, the only thing .dockerignore lets through.
#
#   PYTHON=.venv/bin/python deploy/images/wheelhouse.sh
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
build="$root/build"
wheelhouse="$root/build/wheelhouse"

# From a clean copy of the sources: an in-tree build would keep a deleted module in
# setuptools' build/lib and put it into the wheel.
rm -rf "$wheelhouse" "$build/context"
mkdir -p "$build/context"
cp -r "$root/pyproject.toml" "$root/README.md" "$root/gateway" "$build/context/"
rm -rf "$build/context/gateway/__pycache__"
"$python" -m pip freeze --exclude-editable > "$build/constraints.txt"
"$python" -m pip wheel --quiet --disable-pip-version-check --wheel-dir "$wheelhouse" \
    --constraint "$build/constraints.txt" "$build/context" pip
