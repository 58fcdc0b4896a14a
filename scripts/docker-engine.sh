#!/usr/bin/env bash
# Make sure a Docker engine answers.
#
# On a fresh Debian host as root (a CI machine) this installs Debian's docker.io and starts
# dockerd with host networking only: no bridge, no iptables, host.docker.internal -> 127.0.0.1.
# Anywhere else it explains what to do and fails, rather than touching a workstation's setup.
set -euo pipefail

DOCKER=${DOCKER:-docker}
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/prefect-agent-dockerd.log}
DOCKERD_FLAGS=${DOCKERD_FLAGS:---bridge=none --iptables=false --ip-forward=false --ip-masq=false --host-gateway-ip=127.0.0.1}

engine_answers() { "$DOCKER" info >/dev/null 2>&1; }

if engine_answers; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    cat >&2 <<MSG
error: no Docker engine answers ('$DOCKER info' failed).
       Start one and retry: 'sudo systemctl start docker' on Linux, Docker Desktop elsewhere.
       (This script only installs and starts an engine itself on a Debian host as root.)
MSG
    exit 1
fi

if ! command -v dockerd >/dev/null 2>&1; then
    echo "docker-engine: installing Debian's docker.io ..." >&2
    export DEBIAN_FRONTEND=noninteractive
    flock /var/lock/prefect-agent-apt.lock apt-get update -qq
    flock /var/lock/prefect-agent-apt.lock apt-get install -y -qq --no-install-recommends docker.io >/dev/null
fi

echo "docker-engine: starting dockerd (host networking only), log in $DOCKERD_LOG" >&2
# shellcheck disable=SC2086  # DOCKERD_FLAGS is a list of flags
setsid nohup dockerd $DOCKERD_FLAGS >"$DOCKERD_LOG" 2>&1 </dev/null &

for _ in $(seq 1 60); do
    if engine_answers; then
        echo "docker-engine: engine is up" >&2
        exit 0
    fi
    sleep 1
done
echo "error: dockerd did not answer within 60 s; last lines of $DOCKERD_LOG:" >&2
tail -n 20 "$DOCKERD_LOG" >&2
exit 1
