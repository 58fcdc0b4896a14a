"""The image's entrypoint, before any setting is loaded: drop root, install the extra
packages, then hand over to the command.

Its variables are read once (:class:`EntrypointEnv`); the root phase uses nothing of the
run phase (settings, the API client, the agent launch), so what runs as root stays small.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

from bootstrap.extras import install_extras
from bootstrap.extras.tls import command_environment
from bootstrap.extras.variables import CA_VAR
from bootstrap.flowrun.heartbeat import Heartbeat
from bootstrap.flowrun.report import FlowRunRole
from bootstrap.root.privileges import RUNTIME_USER_ENV, docker_socket_path, drop_privileges
from bootstrap.util.errors import BootstrapError, ExtrasError, SettingsError
from bootstrap.util.log import configure_logging_from, logger, mask
from bootstrap.util.rundir import ensure_run_dir
from bootstrap.util.timings import timed


@dataclass(frozen=True)
class EntrypointEnv:
    """What the entrypoint reads from its environment."""

    runtime_user: Optional[str]  # whom root becomes (the image sets it)
    docker_socket: Path  # whose group the runtime user gets

    @classmethod
    def read(cls, environ: Mapping[str, str]) -> EntrypointEnv:
        return cls(
            runtime_user=environ.get(RUNTIME_USER_ENV) or None,
            docker_socket=docker_socket_path(environ),
        )


def prepare_container(environ: Mapping[str, str], command: Sequence[str] = ()) -> None:
    """Drop root (keeping the Docker socket's group), then install the extra packages. In a
    flow-run container (``command`` is prefect's flow runner), the run's heartbeat goes on
    meanwhile, and a failure ends the run Failed with the installer's reason."""
    env = EntrypointEnv.read(environ)
    configure_logging_from(environ)  # bad values: the settings report them later
    logger.debug("Entrypoint started (uid %d): preparing the container", os.getuid())
    drop_privileges(env.runtime_user, env.docker_socket)
    role = FlowRunRole.detect(environ, command)
    with timed("extras"), Heartbeat(role) if role else contextlib.nullcontext():
        try:
            overlay = install_extras(environ)
        except ExtrasError as exc:
            if role is not None:
                reason = mask(str(exc)).strip().splitlines()[0]
                role.fail(
                    "the flow-run container could not install its extra packages "
                    f"(exit {exc.exit_code}): {reason}"
                )
            raise
    if overlay is not None:  # a read-only environment: the command finds the extras first
        os.environ.update(overlay.environment(os.environ))
    os.environ.update(trust_extra_ca(environ))


def trust_extra_ca(environ: Mapping[str, str]) -> Mapping[str, str]:
    """EXTRA_CA_CERT for the command too (the agent, a flow run behind the same proxy)."""
    value = (environ.get(CA_VAR) or "").strip()
    if not value:
        return {}
    try:
        return command_environment(value, ensure_run_dir(environ), environ)
    except (ExtrasError, OSError) as exc:
        raise SettingsError(f"{CA_VAR}: cannot make the command trust it ({exc})") from None


def exec_command(argv: Sequence[str]) -> None:
    """Replace this process with ``argv`` (it becomes tini's child: it gets the signals).
    Prefect's flow runner runs under :mod:`bootstrap.flowrun`, which reports a stop."""
    if FlowRunRole.detect(os.environ, argv) is not None:
        argv = [sys.executable, "-m", "bootstrap.flowrun", *argv[1:]]
    try:
        os.execvp(argv[0], list(argv))
    except OSError as exc:
        raise BootstrapError(f"cannot run {argv[0]!r}: {exc.strerror}") from None


def is_bootstrap(argv: Sequence[str], prog: str) -> Optional[Sequence[str]]:
    """The bootstrap's own arguments when ``argv`` runs the bootstrap itself, else None."""
    if argv and os.path.basename(argv[0]) == prog:
        return list(argv[1:])
    return None
