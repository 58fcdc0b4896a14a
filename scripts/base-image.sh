#!/usr/bin/env bash
# Print the base image the Dockerfile should be built FROM, making sure it is present.
#
#   1. BASE_IMAGE if it is already present, or can be pulled (a workstation: the real,
#      pinned conda distribution);
#   2. otherwise, with OFFLINE_BASE=auto (the default), a base built locally from Debian
#      packages (a host with no registry, like CI), built once and then reused.
#
# PLATFORM (e.g. linux/arm64) pulls or builds the base for that platform.
# OFFLINE_BASE=never fails instead of falling back; OFFLINE_BASE=always skips step 1. A
# BASE_IMAGE the operator chose (BASE_IMAGE_EXPLICIT=1) never falls back: a build on another
# base than the one asked for would be a surprise. Diagnostics go to stderr; stdout is only
# the image name.
set -euo pipefail

DOCKER=${DOCKER:-docker}
BASE_IMAGE=${BASE_IMAGE:?BASE_IMAGE must be set}
LOCAL_BASE_IMAGE=${LOCAL_BASE_IMAGE:-prefect-agent-base:bookworm}
OFFLINE_BASE=${OFFLINE_BASE:-auto}
BASE_IMAGE_EXPLICIT=${BASE_IMAGE_EXPLICIT:-0}
here=$(cd "$(dirname "$0")" && pwd)

PLATFORM=${PLATFORM:-}
# The architecture wanted: PLATFORM's (linux/arm64[/v8]), else the engine's own, so that a
# base pulled or built for another platform under the same name is never taken by mistake.
if [ -n "$PLATFORM" ]; then
    want_arch=${PLATFORM#*/}
    want_arch=${want_arch%%/*}
else
    want_arch=$("$DOCKER" version --format '{{.Server.Arch}}' 2>/dev/null || true)
fi

present() {
    arch=$("$DOCKER" image inspect --format '{{.Architecture}}' "$1" 2>/dev/null) || return 1
    [ -z "$want_arch" ] || [ "$arch" = "$want_arch" ]
}

case "$OFFLINE_BASE" in
    auto | never | always) ;;
    *) echo "error: OFFLINE_BASE must be auto, never or always (got '$OFFLINE_BASE')" >&2; exit 2 ;;
esac

if [ "$OFFLINE_BASE" != always ]; then
    if present "$BASE_IMAGE"; then
        echo "$BASE_IMAGE"
        exit 0
    fi
    if pull_error=$("$DOCKER" pull --quiet ${PLATFORM:+--platform "$PLATFORM"} "$BASE_IMAGE" 2>&1 >/dev/null); then
        echo "$BASE_IMAGE"
        exit 0
    fi
    if [ "$OFFLINE_BASE" = never ]; then
        echo "error: cannot pull $BASE_IMAGE: $pull_error" >&2
        exit 1
    fi
    if [ "$BASE_IMAGE_EXPLICIT" = 1 ]; then
        echo "error: BASE_IMAGE=$BASE_IMAGE cannot be used: it is not present and cannot be" \
            "pulled (${pull_error##*: }). The offline Debian base stands in only for the default" \
            "base; build on it with OFFLINE_BASE=always" >&2
        exit 1
    fi
    echo "base-image: cannot pull $BASE_IMAGE (${pull_error##*: }); using the offline base $LOCAL_BASE_IMAGE" >&2
fi

if ! present "$LOCAL_BASE_IMAGE"; then
    DOCKER="$DOCKER" PLATFORM="$PLATFORM" "$here/local-base-image.sh" "$LOCAL_BASE_IMAGE"
fi
echo "$LOCAL_BASE_IMAGE"
