"""The Docker socket a flow run is given, and how the agent's own may be used: flow runs of
this image start as its runtime user, so one given the socket needs the socket's group
(:func:`bootstrap.agent.docker_runs.own_docker_client`). Pure but for one ``stat``."""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from typing import Any, Dict, Optional

from bootstrap.util.engine import docker_engine_url, looks_like_a_docker_socket, socket_path

logger = logging.getLogger("bootstrap.agent")


def binds_a_docker_socket(binds: Any) -> bool:
    """Whether ``binds`` (the SDK's dict ``{source: {"bind": target}}``, or a list of
    ``source:target[:mode]`` as in the engine's HostConfig) give the container a Docker
    socket, by :func:`~bootstrap.util.engine.looks_like_a_docker_socket`."""
    if isinstance(binds, dict):
        pairs = [(source, (spec or {}).get("bind")) for source, spec in binds.items()]
    else:
        pairs = []
        for each in binds or []:
            if isinstance(each, bytes):
                each = each.decode(errors="replace")
            parts = str(each).split(":")
            pairs.append((parts[0], parts[1] if len(parts) > 1 else None))
    return any(looks_like_a_docker_socket(path) for pair in pairs for path in pair)


@dataclass(frozen=True)
class SocketAccess:
    """How the agent's own Docker socket may be used: through its group ``gid`` (None: not
    by its group), or by root only (mode 0600 root:root: the agent stayed root for it);
    ``present``: False for a TCP engine, or no socket where its URL says."""

    gid: Optional[int] = None
    root_only: bool = False
    present: bool = False


def socket_access(base_url: Optional[str]) -> SocketAccess:
    """How the agent's socket (``base_url``: its engine URL) may be used."""
    path = socket_path(docker_engine_url(base_url, os.environ))
    try:
        info = path.stat() if path is not None else None
    except OSError:
        info = None
    if info is None:
        return SocketAccess()
    if info.st_mode & stat.S_IRGRP and info.st_mode & stat.S_IWGRP:
        return SocketAccess(gid=info.st_gid, present=True)
    return SocketAccess(root_only=info.st_uid == 0, present=True)


NO_SOCKET = SocketAccess()  # a TCP engine


def give_socket_group(options: Dict[str, Any], socket: SocketAccess) -> None:
    """A flow run's create_host_config ``options`` binding a Docker socket: add the group
    the agent's socket is used through (``group_add``), keeping the run's own groups."""
    if not binds_a_docker_socket(options.get("binds")):
        return
    if socket.gid is not None:
        groups = [str(each) for each in options.get("group_add") or []]
        if str(socket.gid) not in groups:
            options["group_add"] = [*groups, str(socket.gid)]
    elif not socket.present:
        logger.warning(
            "A flow run is given a Docker socket, but the agent has no socket of its own to "
            "take the group from (a TCP engine): the run starts as the image's runtime user "
            "without the socket's group"
        )
