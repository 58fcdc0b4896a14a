"""Start the Prefect agent: build its command line (pure), check it can run, exec it.

The agent replaces the bootstrap process (``exec``), so it is the container's main process
and receives ``docker stop``'s signal directly.

Flow-run environment variables (``agent_env``) are handed over in the environment, as
Prefect's ``PREFECT__CLOUD__AGENT__ENV_VARS``, rather than as ``--env`` arguments: an argv
is visible to every process listing on the host, an environment is not.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit

from bootstrap.errors import PreflightError
from bootstrap.log import MASK, logger
from bootstrap.server import ApiConfig
from bootstrap.settings import AgentType, Settings, is_secret_name

DEFAULT_DOCKER_URL = "unix:///var/run/docker.sock"
SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


@dataclass(frozen=True)
class AgentLaunch:
    """What to exec: the argv, and the variables to add to the environment."""

    argv: Tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    secrets: Tuple[str, ...] = ()

    def render(self) -> str:
        """Shell-quoted environment and argv, with secret values masked."""
        lines = [
            f"{name}={shlex.quote(self._masked(name, value))}" for name, value in self.env.items()
        ]
        lines.append(" ".join(shlex.quote(arg) for arg in self.argv))
        return " \\\n  ".join(lines)

    def _masked(self, name: str, value: str) -> str:
        if is_secret_name(name):
            return MASK
        for secret in self.secrets:
            value = value.replace(secret, MASK)
        return value


def docker_engine_url(explicit: Optional[str], environ: Mapping[str, str]) -> str:
    """The engine the Docker agent uses: the setting, else DOCKER_HOST, else the socket.
    The one rule for both the agent and the entrypoint's socket-group step."""
    return explicit or environ.get("DOCKER_HOST") or DEFAULT_DOCKER_URL


def docker_base_url(settings: Settings, environ: Mapping[str, str]) -> str:
    return docker_engine_url(settings.docker_base_url, environ)


def agent_launch(
    settings: Settings,
    api: ApiConfig,
    tenant_id: str,
    environ: Mapping[str, str],
    job_template: Optional[str] = None,
) -> AgentLaunch:
    """Build ``prefect agent <type> start ...`` and its environment from the settings.

    ``job_template``: the Kubernetes agent's Job template file rendered from the settings
    (bootstrap.kubernetes.prepare_job_template); a ``kubernetes_job_template`` setting wins.
    """
    kind = settings.agent_type
    argv: List[str] = ["prefect", "agent", kind.value, "start"]
    argv += ["--api", api.url, "--tenant-id", tenant_id]
    argv += ["--agent-address", settings.agent_address]
    argv += ["--log-level", settings.log_level.value]
    if settings.agent_name:
        argv += ["--name", settings.agent_name]
    for label in settings.agent_labels:
        argv += ["--label", label]
    if settings.max_polls is not None:
        argv += ["--max-polls", str(settings.max_polls)]
    if settings.no_cloud_logs:
        argv.append("--no-cloud-logs")

    if kind is AgentType.docker:
        argv += ["--base-url", docker_base_url(settings, environ)]
        if settings.docker_no_pull:
            argv.append("--no-pull")
        if settings.show_flow_logs:
            argv.append("--show-flow-logs")
        for volume in settings.docker_volumes:
            argv += ["--volume", volume]
        for network in settings.docker_networks:
            argv += ["--network", network]
        if settings.docker_client_timeout is not None:
            argv += ["--docker-client-timeout", str(settings.docker_client_timeout)]
    elif kind is AgentType.kubernetes:
        if settings.kubernetes_namespace:
            argv += ["--namespace", settings.kubernetes_namespace]
        job_template = settings.kubernetes_job_template or job_template
        if job_template:
            argv += ["--job-template", job_template]
        if settings.kubernetes_service_account_name:
            argv += ["--service-account-name", settings.kubernetes_service_account_name]
        if settings.kubernetes_image_pull_secrets:
            argv += ["--image-pull-secrets", ",".join(settings.kubernetes_image_pull_secrets)]
        if not settings.kubernetes_delete_finished_jobs:
            argv.append("--disable-job-deletion")
    elif kind is AgentType.local:
        for path in settings.local_import_paths:
            argv += ["--import-path", path]
        if settings.show_flow_logs:
            argv.append("--show-flow-logs")
        if not settings.local_hostname_label:
            argv.append("--no-hostname-label")

    env: Dict[str, str] = {
        "PREFECT__BACKEND": "server",
        "PREFECT__CLOUD__API": api.url,
        "PREFECT__CLOUD__TENANT_ID": tenant_id,
    }
    if settings.agent_env:
        env["PREFECT__CLOUD__AGENT__ENV_VARS"] = json.dumps(settings.agent_env, sort_keys=True)
    return AgentLaunch(tuple(argv), env, tuple(settings.secret_values()))


# Preflight: fail with a clear message before exec, rather than with the agent's traceback.


def check_docker(base_url: str) -> None:
    """The Docker agent needs an engine it can reach; say exactly why it cannot."""
    parts = urlsplit(base_url)
    if parts.scheme == "unix":
        socket = Path(parts.path)
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
                f"(groups {sorted(os.getgroups())}). Start the container as root (the image "
                "default: the entrypoint adds the socket's group, then drops root) or add "
                f"the group yourself: docker run --group-add {info.st_gid} ..."
            )
    import docker  # deferred: only the Docker agent needs it

    try:
        client = docker.APIClient(base_url=base_url, version="auto", timeout=10)
        client.ping()
    except Exception as exc:  # the SDK raises several unrelated types
        raise PreflightError(f"the Docker engine at {base_url} does not answer: {exc}") from None


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


def preflight(settings: Settings, environ: Mapping[str, str]) -> None:
    if settings.agent_type is AgentType.docker:
        check_docker(docker_base_url(settings, environ))
    elif settings.agent_type is AgentType.kubernetes:
        check_kubernetes(environ)


def executable(name: str) -> str:
    """``name`` from the running interpreter's environment first, so the agent always runs
    with the same prefect as the bootstrap; then from PATH."""
    search = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    found = shutil.which(name, path=search)
    if found is None:
        raise PreflightError(f"cannot start the agent: {name!r} is not installed ({search})")
    return found


def exec_agent(launch: AgentLaunch) -> None:
    program = executable(launch.argv[0])
    logger.info("Starting the agent:\n  %s", launch.render())
    try:
        os.execve(program, list(launch.argv), {**os.environ, **launch.env})
    except OSError as exc:
        raise PreflightError(f"cannot start the agent ({program}): {exc.strerror}") from None
