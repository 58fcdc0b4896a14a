#!/usr/bin/env bash
# Build a minimal Debian base image from Debian packages, without any container registry:
# mmdebstrap -> docker import. Used for offline builds (hosts with no registry, such as CI).
#
# The result has what the Dockerfile needs from a base: python3 + venv, CA certificates,
# tini and the user tools. It has no conda CLI; the image then installs EXTRA_CONDA_PACKAGES
# with py-rattler.
#
# usage: scripts/local-base-image.sh IMAGE[:TAG]     (env: DOCKER, DEBIAN_MIRROR, DEBIAN_SUITE)
set -euo pipefail

image=${1:?usage: $0 IMAGE[:TAG]}
DOCKER=${DOCKER:-docker}
DEBIAN_SUITE=${DEBIAN_SUITE:-bookworm}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if ! command -v mmdebstrap >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "local-base-image: installing mmdebstrap ..." >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null
    else
        echo "error: mmdebstrap is needed to build a base image offline (apt-get install mmdebstrap)" >&2
        exit 1
    fi
fi

echo "local-base-image: building $image from Debian $DEBIAN_SUITE ($DEBIAN_MIRROR) ..." >&2
start=$(date +%s)
# Docs, man pages, locales and apt lists are of no use in an agent image.
# shellcheck disable=SC2016  # "$1" is expanded by mmdebstrap's hook, not here
mmdebstrap --variant=minbase --quiet \
    --include=python3,python3-venv,ca-certificates,tini \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    "$DEBIAN_SUITE" - "$DEBIAN_MIRROR" \
    | "$DOCKER" import \
        --change 'ENV LANG=C.UTF-8 LC_ALL=C.UTF-8' \
        --change 'CMD ["/bin/bash"]' \
        --message "minbase $DEBIAN_SUITE + python3, python3-venv, ca-certificates, tini" \
        - "$image" >/dev/null
echo "local-base-image: $image built in $(( $(date +%s) - start )) s" >&2
