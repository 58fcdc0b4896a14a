"""Drop root for the runtime user, keeping access to a mounted Docker socket.

The image runs as its runtime user (uid 1000): give it the Docker socket's group with
``--group-add``. Started as root instead (``--user 0``), the entrypoint does it: a Docker
socket mounted from the host belongs to the host's docker group, whose id the image cannot
know in advance, so root adds that group id to the runtime user's groups and then switches
to the user for good.

That root phase is :func:`main`, run by the image's entrypoint with an interpreter and a
copy of this module that only root can write (``python -I -S``: no site-packages, nothing
of the environment the runtime user owns), so no code the runtime user could have planted
ever runs as root. This module and what it imports use the standard library only.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence, Tuple

from bootstrap.util.engine import DEFAULT_SOCKET, docker_engine_url_from_env, socket_path
from bootstrap.util.errors import BootstrapError, PreflightError
from bootstrap.util.log import configure_logging, environ_log_level, logger, register_secrets
from bootstrap.util.secrets import environment_secrets

RUNTIME_USER_ENV = "PREFECT_AGENT_USER"
# The runtime environment's commands: first on the run phase's PATH, never on root's (the
# runtime user owns them; the image's PATH has root-owned wrappers instead).
RUNTIME_BIN_ENV = "PREFECT_ENV"
# The package caches of the run phase (mount a volume at CACHE to keep them): the runtime
# user's, so never in the image's environment, which a root `docker exec` gets.
CACHE = "/var/cache/prefect-agent"
RUN_PHASE_CACHES = {"XDG_CACHE_HOME": CACHE, "CONDA_PKGS_DIRS": f"{CACHE}/conda/pkgs"}


@dataclass(frozen=True)
class Identity:
    user: str
    uid: int
    gid: int
    groups: Tuple[int, ...]
    home: str


@dataclass(frozen=True)
class SocketInfo:
    path: Path
    uid: int
    gid: int
    mode: int


def docker_socket_path(environ: Mapping[str, str]) -> Path:
    """The socket the agent will use (settings are not loaded yet: their variable is read);
    the default socket for a TCP engine, whose group then matters to nobody."""
    return socket_path(docker_engine_url_from_env(environ)) or DEFAULT_SOCKET


def plan_identity(
    user: pwd.struct_passwd,
    user_groups: Sequence[int],
    socket: Optional[SocketInfo],
) -> Tuple[Optional[Identity], str]:
    """Decide who to become, as root. Returns (identity or None to stay root, reason)."""
    groups = sorted({user.pw_gid, *user_groups})
    if socket is None:
        reason = "no Docker socket mounted"
    elif socket.mode & stat.S_IRGRP and socket.mode & stat.S_IWGRP:
        groups = sorted({*groups, socket.gid})
        reason = f"Docker socket {socket.path} usable through its group {socket.gid}"
    elif socket.uid == user.pw_uid:
        reason = f"Docker socket {socket.path} owned by {user.pw_name}"
    else:
        # Only its owner can use this socket (e.g. mode 0600 root:root): non-root where the
        # socket allows, so this is the one case that keeps root.
        return None, (
            f"Docker socket {socket.path} (mode {socket.mode & 0o777:o}, owner "
            f"{socket.uid}) is usable by its owner only: staying root"
        )
    identity = Identity(user.pw_name, user.pw_uid, user.pw_gid, tuple(groups), user.pw_dir)
    return identity, reason


def socket_info(path: Path) -> Optional[SocketInfo]:
    try:
        info = path.stat()
    except OSError:
        return None
    if not stat.S_ISSOCK(info.st_mode):
        return None
    return SocketInfo(path, info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode))


def _socket_group(socket: Optional[SocketInfo]) -> str:
    return str(socket.gid) if socket is not None else '"$(stat -c %g /var/run/docker.sock)"'


def drop_privileges(name: Optional[str], socket_path: Path, always: bool = False) -> None:
    """As root, become the runtime user ``name`` (plus the group of the Docker socket at
    ``socket_path``, if one is mounted there). Otherwise do nothing. ``always``: drop root
    even for a socket only root may use (a command, not the agent: it goes without it)."""
    if os.getuid() != 0:
        return
    if not name:
        if always:
            raise BootstrapError(f"{RUNTIME_USER_ENV} is not set: not running this as root")
        logger.warning("%s is not set: running as root", RUNTIME_USER_ENV)
        return
    try:
        user = pwd.getpwnam(name)
    except KeyError:
        raise BootstrapError(f"{RUNTIME_USER_ENV}={name!r}: no such user in the image") from None
    user_groups = [group.gr_gid for group in grp.getgrall() if name in group.gr_mem]
    socket = socket_info(socket_path)
    identity, reason = plan_identity(user, user_groups, socket)
    if identity is None and always:
        identity, reason = plan_identity(user, user_groups, None)
    if identity is None:
        logger.warning("%s", reason)
        return
    try:
        os.setgroups(list(identity.groups))
        os.setgid(identity.gid)
        os.setuid(identity.uid)  # last: after this there is no way back to root
    except PermissionError:
        raise PreflightError(
            f"cannot drop root for {identity.user}: this container may not change its user "
            "(--cap-drop ALL?). Start it as the runtime user with the socket's group: "
            f"docker run --user {identity.user} --group-add {_socket_group(socket)} ..., "
            "or keep the two capabilities that needs: --cap-add SETUID --cap-add SETGID"
        ) from None
    os.environ.update(HOME=identity.home, USER=identity.user, LOGNAME=identity.user)
    logger.debug(
        "Running as %s (uid %d, groups %s): %s",
        identity.user,
        identity.uid,
        list(identity.groups),
        reason,
    )


BOOTSTRAP_COMMAND = "prefect-agent-bootstrap"


def run_phase_path(environ: Mapping[str, str]) -> str:
    """PATH for what runs as the runtime user: the runtime environment's commands first."""
    runtime_bin = str(Path(environ.get(RUNTIME_BIN_ENV) or "/opt/prefect") / "bin")
    rest = [entry for entry in environ.get("PATH", "").split(os.pathsep) if entry != runtime_bin]
    return os.pathsep.join([runtime_bin, *filter(None, rest)])


def _as_runtime_user(argv: Sequence[str], always: bool, quiet: bool = False) -> int:
    register_secrets(environment_secrets(os.environ))
    # quiet: a wrapped command's output is its own (warnings and errors only)
    configure_logging("WARNING" if quiet else environ_log_level(os.environ))
    try:
        drop_privileges(os.environ.get(RUNTIME_USER_ENV), docker_socket_path(os.environ), always)
    except BootstrapError as exc:
        logger.error("%s", exc)
        return exc.exit_code
    if always and os.getuid() == 0:  # a runtime user that is root: refuse, never run as it
        logger.error("%s names a root user: not running %s as root", RUNTIME_USER_ENV, argv[0])
        return 1
    # still root here only for a socket only root may use (docs/security.md: what remains)
    os.environ["PATH"] = run_phase_path(os.environ)
    for name, value in RUN_PHASE_CACHES.items():
        os.environ.setdefault(name, value)
    try:
        os.execvp(argv[0], list(argv))
    except OSError as exc:
        print(f"error: cannot run {argv[0]}: {exc.strerror}", file=sys.stderr)
        return 126 if isinstance(exc, PermissionError) else 127
    return 0  # not reached


INIT = ("/usr/local/libexec/prefect-agent/tini", "-g", "--")
ENTRYPOINT = "/usr/local/bin/prefect-agent-entrypoint"


def start(command: Sequence[str]) -> int:
    """The image's ENTRYPOINT, PID 1 for a moment: as root, drop root (adding the socket's
    group), then become tini, the container's init, running the entrypoint with
    ``command``: from then on nothing in the container is root, PID 1 included."""
    return _as_runtime_user([*INIT, ENTRYPOINT, *command], always=False)


def main(command: Sequence[str]) -> int:
    """The root phase of the image's entrypoint: drop root, then exec the bootstrap's
    entrypoint (extras, then ``command``) as the runtime user."""
    return _as_runtime_user([BOOTSTRAP_COMMAND, "entrypoint", "--", *command], always=False)


def run_as_user(command: Sequence[str]) -> int:
    """What the image's command wrappers run (``docker exec`` is root by default): the
    runtime environment's ``command`` as the runtime user, never as root, without the
    entrypoint's steps."""
    if not command:
        print("error: run-as-user needs a command", file=sys.stderr)
        return 2
    return _as_runtime_user(command, always=True, quiet=True)
