#!/usr/bin/env bash
# Print the repository digest (sha256:...) of a base image, for the label
# org.opencontainers.image.base.digest; nothing for an image that has none (built locally).
# Only a digest of the image's own repository counts: the same image may also be known under
# other names.
#
# usage: scripts/base-digest.sh IMAGE        (env: DOCKER)
set -euo pipefail

image=${1:?usage: $0 IMAGE}
DOCKER=${DOCKER:-docker}

# Pinned by digest: that is the digest.
case "$image" in *@sha256:*) echo "${image#*@}"; exit 0 ;; esac

normalise() {   # docker.io/library/debian, docker.io/debian, debian -> library/debian
    name=${1#docker.io/}
    case "$name" in */*) echo "$name" ;; *) echo "library/$name" ;; esac
}
repository=$image
last=${repository##*/}
case "$last" in *:*) repository=${repository%:*} ;; esac   # a tag, not a registry port
repository=$(normalise "$repository")

"$DOCKER" image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$image" |
    while IFS= read -r reference; do
        name=$(normalise "${reference%@*}")
        if [ "$name" = "$repository" ]; then
            echo "${reference#*@}"
            break
        fi
    done
