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
from bootstrap.util.errors import BootstrapError
from bootstrap.util.log import configure_logging, logger, register_secrets
from bootstrap.util.secrets import environment_secrets

RUNTIME_USER_ENV = "PREFECT_AGENT_USER"


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


def drop_privileges(name: Optional[str], socket_path: Path) -> None:
    """As root, become the runtime user ``name`` (plus the group of the Docker socket at
    ``socket_path``, if one is mounted there). Otherwise do nothing."""
    if os.getuid() != 0:
        return
    if not name:
        logger.warning("%s is not set: running as root", RUNTIME_USER_ENV)
        return
    try:
        user = pwd.getpwnam(name)
    except KeyError:
        raise BootstrapError(f"{RUNTIME_USER_ENV}={name!r}: no such user in the image") from None
    user_groups = [group.gr_gid for group in grp.getgrall() if name in group.gr_mem]
    socket = socket_info(socket_path)
    identity, reason = plan_identity(user, user_groups, socket)
    if identity is None:
        logger.warning("%s", reason)
        return
    os.setgroups(list(identity.groups))
    os.setgid(identity.gid)
    os.setuid(identity.uid)  # last: after this there is no way back to root
    os.environ.update(HOME=identity.home, USER=identity.user, LOGNAME=identity.user)
    logger.debug(
        "Running as %s (uid %d, groups %s): %s",
        identity.user,
        identity.uid,
        list(identity.groups),
        reason,
    )


BOOTSTRAP_COMMAND = "prefect-agent-bootstrap"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def main(command: Sequence[str]) -> int:
    """The root phase of the image's entrypoint: drop root, then exec the bootstrap's
    entrypoint (extras, then ``command``) as the runtime user."""
    register_secrets(environment_secrets(os.environ))
    level = os.environ.get("BOOTSTRAP_LOG_LEVEL", "INFO").upper()
    configure_logging(level if level in LOG_LEVELS else "INFO")
    try:
        drop_privileges(os.environ.get(RUNTIME_USER_ENV), docker_socket_path(os.environ))
    except BootstrapError as exc:
        logger.error("%s", exc)
        return exc.exit_code
    argv = [BOOTSTRAP_COMMAND, "entrypoint", "--", *command]
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        print(f"error: cannot run {argv[0]}: {exc.strerror}", file=sys.stderr)
        return 1
    return 0  # not reached
