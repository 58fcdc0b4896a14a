"""Start the Prefect agent: build its command line (pure), then exec it.

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
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple

from bootstrap.engine import docker_engine_url
from bootstrap.errors import PreflightError
from bootstrap.kubernetes import job_template
from bootstrap.log import MASK, logger
from bootstrap.secrets import is_secret_name
from bootstrap.server import ApiConfig
from bootstrap.settings import AgentType, Settings


@dataclass(frozen=True)
class AgentLaunch:
    """What to exec: the argv, the variables to add to the environment, and the Job
    template file to write first (Kubernetes agents)."""

    argv: Tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    secrets: Tuple[str, ...] = ()
    job_template: Optional[job_template.TemplateFile] = None

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


def docker_base_url(settings: Settings, environ: Mapping[str, str]) -> str:
    return docker_engine_url(settings.docker_base_url, environ)


def agent_launch(
    settings: Settings,
    api: ApiConfig,
    tenant_id: str,
    environ: Mapping[str, str],
    work_dir: Optional[str] = None,
) -> AgentLaunch:
    """Build ``prefect agent <type> start ...`` and its environment from the settings.

    ``work_dir``: where a Kubernetes agent's rendered Job template is to be written
    (default: see :func:`bootstrap.kubernetes.job_template.choose`).
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

    template = job_template.choose(settings, work_dir)
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
        if template:
            argv += ["--job-template", template.path]
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
    return AgentLaunch(tuple(argv), env, tuple(settings.secret_values()), template)


def executable(name: str) -> str:
    """``name`` from the running interpreter's environment first, so the agent always runs
    with the same prefect as the bootstrap; then from PATH."""
    search = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    found = shutil.which(name, path=search)
    if found is None:
        raise PreflightError(f"cannot start the agent: {name!r} is not installed ({search})")
    return found


def exec_agent(launch: AgentLaunch) -> None:
    """Write the Job template (if any), then replace this process with the agent."""
    program = executable(launch.argv[0])
    if launch.job_template is not None and launch.job_template.text is not None:
        job_template.write(launch.job_template)
        logger.info("Flow-run Job template written to %s", launch.job_template.path)
    logger.info("Starting the agent:\n  %s", launch.render())
    try:
        os.execve(program, list(launch.argv), {**os.environ, **launch.env})
    except OSError as exc:
        raise PreflightError(f"cannot start the agent ({program}): {exc.strerror}") from None
