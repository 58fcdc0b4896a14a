#!/usr/bin/env bash
# Make sure the host tools the tests drive are installed: docker-compose (the LUME-services
# compose file is validated and run with it) and kubectl (kustomize of deploy/kubernetes).
#
# On a Debian host as root (a CI machine) this installs what is missing from Debian's
# packages; anywhere else it names the packages and fails, rather than touching a
# workstation's setup.
set -euo pipefail

missing=()
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v kubectl >/dev/null 2>&1 || missing+=(kubernetes-client)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "error: the tests need ${missing[*]} (Debian packages); install them and retry" >&2
    exit 1
fi
echo "test-tools: installing ${missing[*]} from Debian ..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
