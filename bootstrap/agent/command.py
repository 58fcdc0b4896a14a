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
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit

from bootstrap.agent.config import CONFIG_ENV, LauncherConfig
from bootstrap.agent.policy import Policy
from bootstrap.api.client import ApiConfig
from bootstrap.api.prefect_config import USER_CONFIG_ENV, user_config_path
from bootstrap.flowrun.additions import FlowRunAdditions
from bootstrap.kubernetes import job_template
from bootstrap.settings import AgentType, Settings
from bootstrap.util import rundir
from bootstrap.util.docker_units import host_config_defaults, parse_bytes
from bootstrap.util.engine import docker_engine_url
from bootstrap.util.errors import PreflightError, SettingsError
from bootstrap.util.log import MASK, logger
from bootstrap.util.proxies import proxy_environment
from bootstrap.util.secrets import is_secret_name, url_credentials

LAUNCHER_MODULE = "bootstrap.agent"
FLOW_RUN_ENV = "PREFECT__CLOUD__AGENT__ENV_VARS"
# Linux refuses to exec with one NAME=VALUE longer than this (MAX_ARG_STRLEN): E2BIG,
# "Argument list too long", naming nothing.
ENV_STRING_LIMIT = 128 * 1024


def check_env_size(name: str, value: str) -> None:
    size = len(f"{name}={value}".encode())
    if size >= ENV_STRING_LIMIT:
        raise SettingsError(
            f"invalid setting BOOTSTRAP_AGENT_ENV: the flow-run variables take {size} bytes "
            f"once handed to the agent ({name}), and Linux allows one variable "
            f"{ENV_STRING_LIMIT} bytes; pass large values in a file or a volume instead"
        )


@dataclass(frozen=True)
class AgentLaunch:
    """What to exec: the argv, the variables to add to the environment, and the Job
    template file to write first (Kubernetes agents)."""

    argv: Tuple[str, ...]  # prefect agent <type> start OPTIONS (prefect's CLI parses them)
    env: Mapping[str, str] = field(default_factory=dict)
    secrets: Tuple[str, ...] = ()
    job_template: Optional[job_template.TemplateFile] = None
    health_url: Optional[str] = None

    @property
    def command(self) -> Tuple[str, ...]:
        """What runs: the launcher (prefect's agent with the bootstrap's hooks), with the
        agent's own options, in this interpreter."""
        return (sys.executable, "-m", LAUNCHER_MODULE, *self.argv[1:])

    def render(self) -> str:
        """Shell-quoted environment and command, with secret values masked."""
        lines = [
            f"{name}={shlex.quote(self._masked(name, value))}" for name, value in self.env.items()
        ]
        lines.append(" ".join(shlex.quote(arg) for arg in self.command))
        return " \\\n  ".join(lines)

    def _masked(self, name: str, value: str) -> str:
        if is_secret_name(name):
            return MASK
        for secret in self.secrets:
            value = value.replace(secret, MASK)
        return value


def docker_base_url(settings: Settings, environ: Mapping[str, str]) -> str:
    return docker_engine_url(settings.docker_base_url, environ)


def local_url(address: str, path: str) -> str:
    """Where a process in this container reaches the agent's server at ``address``."""
    parts = urlsplit(address)
    host = parts.hostname if parts.hostname not in (None, "", "0.0.0.0") else "127.0.0.1"  # noqa: S104
    return f"http://{host}:{parts.port}{path}"


def launcher_config(
    settings: Settings, environ: Mapping[str, str], startup_seconds: Mapping[str, float]
) -> LauncherConfig:
    kind = settings.agent_type
    return LauncherConfig(
        agent_type=kind.value,
        max_poll_interval=settings.agent_max_poll_interval,
        liveness_window=settings.agent_liveness_multiple * settings.agent_max_poll_interval,
        outage_limit=settings.agent_api_outage_limit,
        engine_url=docker_base_url(settings, environ) if kind is AgentType.docker else None,
        metrics_port=settings.metrics_port,
        metrics_host=urlsplit(settings.health_address()).hostname or "",
        log_format=settings.log_format.value,
        log_level=settings.log_level.value,
        startup_seconds=dict(startup_seconds),
        policy=flow_run_policy(settings).to_dict(),
        failed_container_retention=settings.docker_failed_container_retention,
        max_flow_runs=settings.agent_max_flow_runs,
        docker_defaults=docker_defaults(settings),
        pull_policy=settings.pull_policy(),
        pull_attempts=settings.docker_pull_attempts,
        docker_config_file=settings.docker_config_file,
        kubernetes_image=settings.kubernetes_image,
        kubernetes_run_as_user=settings.kubernetes_run_as_user,
    )


def flow_run_policy(settings: Settings) -> Policy:
    """What flow runs may ask for: the agent's own volumes and networks, the allowed paths,
    and the rules the operator lifted."""
    own_sources = [volume.split(":", 1)[0] for volume in settings.docker_volumes]
    return Policy(
        allow=frozenset(settings.flow_run_allow),
        paths=tuple(settings.flow_run_allowed_paths)
        + tuple(source for source in own_sources if source.startswith("/")),
        networks=tuple(settings.docker_networks),
        service_account=settings.kubernetes_service_account_name,
        ceilings=resource_ceilings(settings),
    )


def resource_ceilings(settings: Settings) -> Dict[str, float]:
    ceilings: Dict[str, float] = {}
    if settings.flow_run_max_memory is not None:
        ceilings["memory"] = parse_bytes(settings.flow_run_max_memory)
    if settings.flow_run_max_cpus is not None:
        ceilings["cpus"] = settings.flow_run_max_cpus
    if settings.flow_run_max_pids is not None:
        ceilings["pids"] = settings.flow_run_max_pids
    return ceilings


def docker_defaults(settings: Settings) -> Dict[str, Any]:
    """What every Docker flow-run container gets unless its run config says otherwise: the
    defaults, else the ceilings (a run without a limit would be past them)."""
    return host_config_defaults(
        settings.docker_memory or settings.flow_run_max_memory,
        settings.docker_cpus or settings.flow_run_max_cpus,
        settings.docker_pids_limit
        if settings.docker_pids_limit is not None
        else settings.flow_run_max_pids,
        settings.docker_shm_size,
    )


def agent_launch(
    settings: Settings,
    api: ApiConfig,
    tenant_id: str,
    environ: Mapping[str, str],
    work_dir: Optional[str] = None,
    startup_seconds: Optional[Mapping[str, float]] = None,
    additions: Optional[FlowRunAdditions] = None,
    secret_env: Optional[Mapping[str, str]] = None,
) -> AgentLaunch:
    """Build ``prefect agent <type> start ...`` and its environment from the settings.

    ``work_dir``: where a Kubernetes agent's rendered Job template is to be written
    (default: the run directory). ``startup_seconds``: the bootstrap's steps, for metrics.
    ``additions``: what every flow run gets besides (bootstrap.flowrun.additions: the CA file);
    ``secret_env``: flow-run variables read from files (agent_env_files), secret all.
    The proxy variables of ``environ`` reach the agent and every flow run, with the
    Prefect Server (and the cluster's services) added to NO_PROXY.
    """
    kind = settings.agent_type
    template = job_template.choose(settings, work_dir)
    argv = common_options(settings, tenant_id)
    if kind is AgentType.docker:
        argv += docker_options(settings, environ, additions)
    elif kind is AgentType.kubernetes:
        argv += kubernetes_options(settings, template)
    elif kind is AgentType.local:
        argv += local_options(settings)
    proxies = proxy_environment(environ, api.url, kind is AgentType.kubernetes)
    env = agent_environment(api, tenant_id, environ, proxies)
    flow_run_env = {
        **proxies,
        **(additions.env if additions else {}),
        **settings.agent_env,
        **(secret_env or {}),
    }
    if flow_run_env:
        env[FLOW_RUN_ENV] = json.dumps(flow_run_env, sort_keys=True)
        check_env_size(FLOW_RUN_ENV, env[FLOW_RUN_ENV])
    env[CONFIG_ENV] = launcher_config(settings, environ, startup_seconds or {}).to_env()
    secrets = settings.secret_values() + url_credentials([api.url, *proxies.values()])
    secrets += [value for value in (secret_env or {}).values() if value]
    return AgentLaunch(
        tuple(argv),
        env,
        tuple(secrets),
        template,
        local_url(settings.health_address(), "/api/health"),
    )


def common_options(settings: Settings, tenant_id: str) -> List[str]:
    argv: List[str] = ["prefect", "agent", settings.agent_type.value, "start"]
    # The API URL goes in the environment (PREFECT__CLOUD__API), never the command line: an
    # argv is visible to every process listing on the host, and a URL can carry credentials.
    argv += ["--tenant-id", tenant_id]
    argv += ["--agent-address", settings.health_address()]
    argv += ["--log-level", settings.log_level.value]
    if settings.agent_name:
        argv += ["--name", settings.agent_name]
    for label in settings.agent_labels:
        argv += ["--label", label]
    if settings.max_polls is not None:
        argv += ["--max-polls", str(settings.max_polls)]
    if settings.no_cloud_logs:
        argv.append("--no-cloud-logs")
    return argv


def docker_options(
    settings: Settings, environ: Mapping[str, str], additions: Optional[FlowRunAdditions]
) -> List[str]:
    # prefect never pulls: the launcher does, as BOOTSTRAP_DOCKER_PULL_POLICY says
    argv = ["--base-url", docker_base_url(settings, environ), "--no-pull"]
    if settings.show_flow_logs:
        argv.append("--show-flow-logs")
    for volume in [*settings.docker_volumes, *(additions.volumes if additions else [])]:
        argv += ["--volume", volume]
    for network in settings.docker_networks:
        argv += ["--network", network]
    if settings.docker_client_timeout is not None:
        argv += ["--docker-client-timeout", str(settings.docker_client_timeout)]
    return argv


def kubernetes_options(
    settings: Settings, template: Optional[job_template.TemplateFile]
) -> List[str]:
    argv: List[str] = []
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
    return argv


def local_options(settings: Settings) -> List[str]:
    argv: List[str] = []
    for path in settings.local_import_paths:
        argv += ["--import-path", path]
    if settings.show_flow_logs:
        argv.append("--show-flow-logs")
    if not settings.local_hostname_label:
        argv.append("--no-hostname-label")
    return argv


def agent_environment(
    api: ApiConfig, tenant_id: str, environ: Mapping[str, str], proxies: Mapping[str, str]
) -> Dict[str, str]:
    """The agent's own variables: the server, the tenant, the proxies, the API key."""
    env: Dict[str, str] = {
        "PREFECT__BACKEND": "server",
        "PREFECT__CLOUD__API": api.url,
        "PREFECT__CLOUD__TENANT_ID": tenant_id,
        **proxies,  # the agent's own NO_PROXY gets the server too
    }
    if api.api_key:  # also when it came from PREFECT__CLOUD__API_KEY_FILE
        env["PREFECT__CLOUD__API_KEY"] = api.api_key
    config_file = user_config_path(environ)
    if config_file is not None:  # e.g. /root/.prefect/config.toml, which prefect would skip
        env[USER_CONFIG_ENV] = str(config_file)
    return env


def exec_agent(launch: AgentLaunch) -> None:
    """Write the Job template (if any) and the health check's pointer to this process, then
    replace this process with the agent (the pid stays: it is still the main process)."""
    try:
        if launch.job_template is not None and launch.job_template.text is not None:
            job_template.write(launch.job_template)
            logger.info("Flow-run Job template written to %s", launch.job_template.path)
        rundir.write_agent_info({"pid": os.getpid(), "health_url": launch.health_url})
    except OSError as exc:
        raise PreflightError(f"cannot prepare the agent's files: {exc}") from None
    logger.info("Starting the agent:\n  %s", launch.render())
    program, *_ = launch.command
    try:
        os.execve(program, list(launch.command), {**os.environ, **launch.env})
    except OSError as exc:
        raise PreflightError(f"cannot start the agent ({program}): {exc.strerror}") from None
