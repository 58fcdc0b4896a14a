#!/bin/bash
# Benchmark baseline entrypoint, the anchor's: install EXTRA_PIP_PACKAGES, then exec "$@".
set -e
if [ -n "$EXTRA_PIP_PACKAGES" ]; then
    echo "+pip install $EXTRA_PIP_PACKAGES"
    # shellcheck disable=SC2086  # word splitting is the point: a list of requirements
    pip install $EXTRA_PIP_PACKAGES
fi
exec "$@"
