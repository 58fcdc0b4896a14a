#!/usr/bin/env bash
# Make sure the host tools the tests drive are installed: docker-compose (the LUME-services
# compose file is validated and run with it), kubectl (kustomize of deploy/kubernetes),
# docker-registry (a real registry on 127.0.0.1 for the image pull policies) and
# Renovate's config validator (renovate.json), the last from npm into .tools/renovate.
#
# On a Debian host as root (a CI machine) this installs what is missing from Debian's
# packages; anywhere else it names the packages and fails, rather than touching a
# workstation's setup.
set -euo pipefail

missing=()
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v kubectl >/dev/null 2>&1 || missing+=(kubernetes-client)
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "error: the tests need ${missing[*]} (Debian packages); install them and retry" >&2
        exit 1
    fi
    echo "test-tools: installing ${missing[*]} from Debian ..." >&2
    export DEBIAN_FRONTEND=noninteractive
    flock /var/lock/prefect-agent-apt.lock apt-get update -qq
    flock /var/lock/prefect-agent-apt.lock apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

RENOVATE_VERSION=${RENOVATE_VERSION:-41.173.1}
tools=$(cd "$(dirname "$0")/.." && pwd)/.tools

if [ ! -x "$tools/renovate/node_modules/.bin/renovate-config-validator" ]; then
    # Renovate loads ES modules with require(): Node.js 20.19 or later (Debian bookworm's
    # own nodejs is 18, too old; NodeSource's or nodejs.org's builds work).
    node_version=$(node --version 2>/dev/null || echo none)
    case "$node_version" in
        v2[1-9].* | v[3-9][0-9].* | v20.19.* | v20.[2-9][0-9].*) ;;
        *)
            echo "error: Renovate's config validator needs Node.js 20.19+ with npm (found:" \
                "$node_version); install it (e.g. from NodeSource) and retry" >&2
            exit 1
            ;;
    esac
    echo "test-tools: installing renovate@$RENOVATE_VERSION into $tools/renovate (npm) ..." >&2
    npm install --prefix "$tools/renovate" --no-audit --no-fund --silent \
        "renovate@$RENOVATE_VERSION" >/dev/null
fi
