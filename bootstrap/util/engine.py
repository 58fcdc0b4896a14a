"""The Docker engine a Docker agent talks to: one rule for the entrypoint, the agent and the
health check, and one way to ask the engine whether it answers.

A leaf module (standard library only, the Docker SDK imported when pinging), so the
entrypoint's root phase can use it without loading the rest of the bootstrap.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Mapping, Optional
from urllib.parse import urlsplit

DEFAULT_DOCKER_URL = "unix:///var/run/docker.sock"
DEFAULT_SOCKET = Path("/var/run/docker.sock")
# The setting, read straight from the environment where settings are not loaded yet.
BASE_URL_ENV = "BOOTSTRAP_DOCKER_BASE_URL"


def docker_engine_url(setting: Optional[str], environ: Mapping[str, str]) -> str:
    """The engine: the ``docker_base_url`` setting, else DOCKER_HOST, else the local socket."""
    return setting or environ.get("DOCKER_HOST") or DEFAULT_DOCKER_URL


def docker_engine_url_from_env(environ: Mapping[str, str]) -> str:
    """The same rule before settings are loaded: the setting's own variable."""
    return docker_engine_url(environ.get(BASE_URL_ENV), environ)


def looks_like_a_docker_socket(path: object) -> bool:
    """Whether a bind's source or target is a Docker socket: a file named ``docker.sock``
    (rootless, Colima and Docker Desktop name theirs so too; a podman socket mounted as
    ``/var/run/docker.sock`` counts by its target)."""
    if isinstance(path, bytes):
        path = path.decode(errors="replace")
    return isinstance(path, str) and PurePosixPath(path.rstrip("/")).name == "docker.sock"


def socket_path(url: str) -> Optional[Path]:
    """The socket file of a ``unix://`` engine URL; None for TCP engines."""
    parts = urlsplit(url)
    if parts.scheme != "unix":
        return None
    return Path(parts.path) if parts.path else DEFAULT_SOCKET


def ping(url: str, timeout: float) -> Optional[str]:
    """None if the engine at ``url`` answers a ping, else what went wrong (one line)."""
    import docker  # deferred: only Docker agents need the SDK

    try:
        client = docker.APIClient(base_url=url, version="auto", timeout=timeout)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # the SDK raises several unrelated types
        return f"{exc.__class__.__name__}: {exc}"[:300]
    return None
