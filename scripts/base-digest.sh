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

repository=${image%@*}             # name[:tag]
last=${repository##*/}
case "$last" in *:*) repository=${repository%:*} ;; esac   # a tag, not a registry port
case "$repository" in */*) ;; *) repository=library/$repository ;; esac

"$DOCKER" image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$image" |
    while IFS= read -r reference; do
        name=${reference%@*}
        case "$name" in docker.io/*) name=${name#docker.io/} ;; esac
        case "$name" in */*) ;; *) name=library/$name ;; esac
        if [ "$name" = "$repository" ] || [ "$name" = "${repository#docker.io/}" ]; then
            echo "${reference#*@}"
            break
        fi
    done
