#!/usr/bin/env bash
# Installs, from Debian's packages, whatever of the system tools the build needs is missing:
# a Python with venv, Java 17, Maven, curl. Run by `make`; a no-op on a machine that has them.
set -euo pipefail

missing=()
command -v python3 >/dev/null || missing+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
command -v java >/dev/null || missing+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null || missing+=(maven)
command -v curl >/dev/null || missing+=(curl)

for extra in "$@"; do
    # extra tools a test needs, as "command:package"; a command with a slash is a path
    # pattern (Debian keeps PostgreSQL's server programs off PATH)
    tool="${extra%%:*}"
    if [[ "$tool" == */* ]]; then
        compgen -G "$tool" >/dev/null || missing+=("${extra##*:}")
    else
        command -v "$tool" >/dev/null || missing+=("${extra##*:}")
    fi
done

if ((${#missing[@]})); then
    echo "installing: ${missing[*]}" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
