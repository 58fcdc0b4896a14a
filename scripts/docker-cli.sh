#!/usr/bin/env bash
# Print the path of a Docker client that can run BuildKit builds (the Dockerfile uses
# RUN --mount for the CA secret and the uv cache).
#
# A client with the buildx plugin does. A client older than 23.0 uses the engine's built-in
# BuildKit with DOCKER_BUILDKIT=1. A newer client without buildx cannot build at all, so when
# several clients are installed (e.g. a CLI 28 without buildx before Debian's 20.10 docker.io
# on PATH) the first usable one wins.
set -euo pipefail

seen=""
while IFS= read -r candidate; do
    real=$(readlink -f "$candidate")
    case " $seen " in *" $real "*) continue ;; esac
    seen="$seen $real"
    if "$candidate" buildx version >/dev/null 2>&1; then
        echo "$candidate"
        exit 0
    fi
    version=$("$candidate" --version 2>/dev/null | sed -n 's/^Docker version \([0-9]*\)\..*/\1/p')
    if [ -n "$version" ] && [ "$version" -lt 23 ]; then
        echo "$candidate"
        exit 0
    fi
done < <(type -aP docker)

# Nothing can build: fall back to plain 'docker' so non-build commands still work and the
# build fails with Docker's own message.
echo docker
