#!/bin/sh
# Container entrypoint, kept thin on purpose: the Python bootstrap installs
# EXTRA_CONDA_PACKAGES / EXTRA_PIP_PACKAGES and then execs "$@", which thereby becomes tini's
# child and receives docker stop's signal itself.
#
# Started as root (the image's default), it first drops root, adding the Docker socket's
# group, with the base's root-owned interpreter and a root-owned copy of that code: nothing
# the runtime user could have written runs as root (hence the absolute paths here). The
# run phase then has the runtime environment's commands first on its PATH, and a HOME.
set -eu
# What this container creates stays writable by group 0: an arbitrary uid in group 0
# (OpenShift) and the runtime user share the environment and the caches.
umask 0002
if [ "$(/usr/bin/id -u)" = 0 ]; then
    exec /usr/local/libexec/prefect-agent/python -I -S \
        /usr/local/lib/prefect-agent/root-step.py drop-root "$@"
fi
PATH="${PREFECT_ENV:-/opt/prefect}/bin:$PATH"
if [ -z "${HOME:-}" ] || [ "$HOME" = / ]; then
    # an arbitrary uid (OpenShift) has no home of its own: the runtime user's (group 0 may
    # write there)
    HOME=$(getent passwd "${PREFECT_AGENT_USER:-prefect}" | cut -d: -f6)
fi
# the package caches: the runtime user's (never in the image's environment, which a root
# docker exec gets)
: "${XDG_CACHE_HOME:=/var/cache/prefect-agent}" "${CONDA_PKGS_DIRS:=/var/cache/prefect-agent/conda/pkgs}"
export PATH HOME XDG_CACHE_HOME CONDA_PKGS_DIRS
exec prefect-agent-bootstrap entrypoint -- "$@"
