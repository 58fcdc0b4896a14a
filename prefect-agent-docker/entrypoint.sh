#!/bin/sh
# Container entrypoint, kept thin on purpose: the Python bootstrap drops root (adding the
# Docker socket's group), installs EXTRA_CONDA_PACKAGES / EXTRA_PIP_PACKAGES and then execs
# "$@", which thereby becomes tini's child and receives docker stop's signal itself.
set -eu
exec prefect-agent-bootstrap entrypoint -- "$@"
