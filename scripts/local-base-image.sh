#!/usr/bin/env bash
# Build a minimal Debian base image from Debian packages, without any container registry:
# mmdebstrap -> docker import. Used for offline builds (hosts with no registry, such as CI).
#
# The result has what the Dockerfile needs from a base: python3 + venv, CA certificates,
# tini and the user tools. It has no conda CLI; the image then installs EXTRA_CONDA_PACKAGES
# with py-rattler.
#
# usage: scripts/local-base-image.sh IMAGE[:TAG]  (env: DOCKER, DEBIAN_MIRROR, DEBIAN_SUITE,
#        PLATFORM: linux/arm64 builds an arm64 base, through QEMU: scripts/emulation.sh)
set -euo pipefail

image=${1:?usage: $0 IMAGE[:TAG]}
DOCKER=${DOCKER:-docker}
DEBIAN_SUITE=${DEBIAN_SUITE:-bookworm}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PLATFORM=${PLATFORM:-}
arch=${PLATFORM#*/}
arch=${arch%%/*}
arch=${arch:-$(dpkg --print-architecture)}

needs=(mmdebstrap)
# A foreign architecture: mmdebstrap runs its maintainer scripts through QEMU (arch-test
# checks that the binfmt handler works).
[ "$arch" = "$(dpkg --print-architecture)" ] || needs+=(arch-test)
missing=()
for tool in "${needs[@]}"; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "local-base-image: installing ${missing[*]} ..." >&2
        export DEBIAN_FRONTEND=noninteractive
        flock /var/lock/prefect-agent-apt.lock apt-get update -qq
        flock /var/lock/prefect-agent-apt.lock apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "error: ${missing[*]} is needed to build a base image offline (apt-get install ${missing[*]})" >&2
        exit 1
    fi
fi

echo "local-base-image: building $image ($arch) from Debian $DEBIAN_SUITE ($DEBIAN_MIRROR) ..." >&2
start=$(date +%s)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Docs, man pages, locales and apt lists are of no use in an agent image.
# shellcheck disable=SC2016  # "$1" is expanded by mmdebstrap's hook, not here
mmdebstrap --variant=minbase --quiet --architectures="$arch" \
    --include=python3,python3-venv,ca-certificates,tini \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    "$DEBIAN_SUITE" "$work/rootfs.tar" "$DEBIAN_MIRROR"
if [ -z "$PLATFORM" ]; then
    "$DOCKER" import \
        --change 'ENV LANG=C.UTF-8 LC_ALL=C.UTF-8' \
        --change 'CMD ["/bin/bash"]' \
        --message "minbase $DEBIAN_SUITE + python3, python3-venv, ca-certificates, tini" \
        "$work/rootfs.tar" "$image" >/dev/null
else
    # docker import records the engine's own architecture whatever the content (20.10 ignores
    # --platform): a build from scratch records the one asked for.
    cat >"$work/Dockerfile" <<'DOCKERFILE'
FROM scratch
ADD rootfs.tar /
ENV LANG=C.UTF-8 LC_ALL=C.UTF-8
CMD ["/bin/bash"]
DOCKERFILE
    DOCKER_BUILDKIT=1 "$DOCKER" build --quiet --platform "$PLATFORM" --tag "$image" "$work" >/dev/null
fi
echo "local-base-image: $image built in $(( $(date +%s) - start )) s" >&2
