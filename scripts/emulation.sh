#!/usr/bin/env bash
# Make sure this host can build and run images of another platform (default linux/arm64)
# through QEMU user emulation: the binfmt handlers registered with the "fix binary" flag, so
# that containers and BuildKit find the emulator without it being in their filesystem.
#
# On a Debian host as root this installs qemu-user-static and binfmt-support, mounts
# binfmt_misc if needed and enables the handler; elsewhere it says what is missing.
set -euo pipefail

platform=${1:-linux/arm64}
platform=${platform:-linux/arm64}
arch=${platform#*/}
arch=${arch%%/*}
case "$arch" in
    arm64) qemu=aarch64 ;;
    amd64) qemu=x86_64 ;;
    *) qemu=$arch ;;
esac
[ "$(dpkg --print-architecture 2>/dev/null || uname -m)" = "$arch" ] && exit 0

handler=/proc/sys/fs/binfmt_misc/qemu-$qemu
registered() { [ -e "$handler" ] && grep -q '^enabled' "$handler" && grep -q '^flags:.*F' "$handler"; }
registered && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "error: no QEMU handler for $arch is registered ($handler). On Debian as root:" \
        "apt-get install qemu-user-static binfmt-support; on Docker Desktop it is built in" >&2
    exit 1
fi
if ! command -v "qemu-$qemu-static" >/dev/null 2>&1 || ! command -v update-binfmts >/dev/null 2>&1; then
    echo "emulation: installing qemu-user-static and binfmt-support ..." >&2
    export DEBIAN_FRONTEND=noninteractive
    flock /var/lock/prefect-agent-apt.lock apt-get update -qq
    flock /var/lock/prefect-agent-apt.lock apt-get install -y -qq --no-install-recommends qemu-user-static binfmt-support >/dev/null
fi
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
update-binfmts --enable "qemu-$qemu" >/dev/null 2>&1 || true
registered || {
    echo "error: the qemu-$qemu handler is not registered with the F flag ($handler)" >&2
    exit 1
}
echo "emulation: $platform runs through qemu-$qemu-static" >&2
