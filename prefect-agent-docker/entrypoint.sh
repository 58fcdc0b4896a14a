#!/bin/sh
# Container entrypoint, kept thin on purpose: the Python bootstrap installs
# EXTRA_CONDA_PACKAGES / EXTRA_PIP_PACKAGES and then execs "$@", which thereby becomes tini's
# child and receives docker stop's signal itself.
#
# Started as root (docker run --user 0), it first drops root, adding the Docker socket's
# group, with the base's root-owned interpreter and a root-owned copy of that code: nothing
# the runtime user could have written runs as root (PATH puts /opt/prefect/bin, which the
# runtime user owns, first: hence the absolute paths here).
set -eu
# What this container creates stays writable by group 0: an arbitrary uid in group 0
# (OpenShift) and the runtime user share the environment and the caches.
umask 0002
if [ "$(/usr/bin/id -u)" = 0 ]; then
    exec /usr/local/libexec/prefect-agent/python -I -S \
        /usr/local/lib/prefect-agent/root-step.py drop-root "$@"
fi
exec prefect-agent-bootstrap entrypoint -- "$@"
