"""Before the agent starts: can it run here? Fail with a message that says what to change,
rather than with the agent's traceback a few seconds later."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Mapping, Optional

from bootstrap.agent.image_pull import check_config_file
from bootstrap.settings import AgentType, Settings
from bootstrap.util.engine import docker_engine_url, ping, socket_path
from bootstrap.util.errors import PreflightError, SettingsError

SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


def check_docker(base_url: str) -> None:
    """The Docker agent needs an engine it can reach; say exactly why it cannot."""
    socket = socket_path(base_url)
    if socket is not None:
        _check_socket(socket)
    problem = ping(base_url, timeout=10)
    if problem:
        raise PreflightError(f"the Docker engine at {base_url} does not answer: {problem}")


def _check_socket(socket: Path) -> None:
    if not socket.exists():
        raise PreflightError(
            f"no Docker socket at {socket}: the Docker agent starts flow runs through it. "
            f"Mount it: docker run -v /var/run/docker.sock:{socket} ..."
        )
    if not stat.S_ISSOCK(socket.stat().st_mode):
        # docker run -v creates an empty directory when the host path does not exist
        kind = "a directory" if socket.is_dir() else "a file"
        raise PreflightError(
            f"{socket} is not a socket ({kind}): mount the Docker engine's socket there. "
            "A directory usually means the host path of the -v mount did not exist "
            "when the container was created: is the engine running on the host?"
        )
    if not os.access(socket, os.R_OK | os.W_OK):
        info = socket.stat()
        raise PreflightError(
            f"the Docker socket {socket} (owner {info.st_uid}:{info.st_gid}, mode "
            f"{info.st_mode & 0o777:o}) is not writable by uid {os.getuid()} "
            f"(groups {sorted(os.getgroups())}). Start the container as root (the image's "
            "default user: leave out --user; the entrypoint adds the socket's group, then "
            f"drops root) or add the group yourself: docker run --group-add {info.st_gid} ..."
        )


def check_kubernetes(environ: Mapping[str, str], home: Optional[Path] = None) -> None:
    """The Kubernetes agent loads in-cluster config, else a kubeconfig: one must exist."""
    in_cluster = bool(environ.get("KUBERNETES_SERVICE_HOST")) and SERVICE_ACCOUNT_TOKEN.exists()
    if in_cluster:
        return
    kubeconfig_env = environ.get("KUBECONFIG")
    candidates = (
        [Path(item) for item in kubeconfig_env.split(os.pathsep) if item]
        if kubeconfig_env
        else [(home or Path.home()) / ".kube" / "config"]
    )
    if any(candidate.is_file() for candidate in candidates):
        return
    where = ", ".join(str(candidate) for candidate in candidates)
    raise PreflightError(
        "the Kubernetes agent cannot reach a cluster: no in-cluster configuration "
        "(KUBERNETES_SERVICE_HOST is unset or there is no service account token at "
        f"{SERVICE_ACCOUNT_TOKEN}) and no kubeconfig ({'KUBECONFIG=' if kubeconfig_env else ''}"
        f"{where} not found). Run it in a cluster, or mount a kubeconfig and set KUBECONFIG."
    )


def check_registry_credentials(path: str) -> None:
    try:
        check_config_file(path)
    except ValueError as exc:
        raise SettingsError(f"BOOTSTRAP_DOCKER_CONFIG_FILE: {exc}") from None


def preflight(settings: Settings, environ: Mapping[str, str]) -> None:
    if settings.agent_type is AgentType.docker:
        check_docker(docker_engine_url(settings.docker_base_url, environ))
        if settings.docker_config_file:
            check_registry_credentials(settings.docker_config_file)
    elif settings.agent_type is AgentType.kubernetes:
        check_kubernetes(environ)
