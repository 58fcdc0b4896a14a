"""Step 5: decide how the agent starts (its argv, environment and flow-run additions),
then exec it. The decision is :func:`launch_agent`; the act is ``exec_agent``."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping

from bootstrap.agent.command import FLOW_RUN_ENV, AgentLaunch, agent_launch
from bootstrap.api.client import PrefectApi
from bootstrap.api.prefect_config import prefect_settings
from bootstrap.flowrun.additions import (
    FlowRunAdditions,
    Mount,
    ca_for_docker_flow_runs,
    combine,
    docker_flow_run_api,
    extras_for_flow_runs,
    own_container,
    own_mounts,
)
from bootstrap.settings import AgentType, Settings
from bootstrap.settings.rules import volume_warnings
from bootstrap.startup.flow_run_check import check_flow_runs_reach_api
from bootstrap.startup.step4_preflight import preflight
from bootstrap.util.engine import docker_engine_url
from bootstrap.util.errors import SettingsError
from bootstrap.util.log import logger, register_secrets
from bootstrap.util.secrets import read_secret_file
from bootstrap.util.timings import STEPS, timed


def launch_agent(
    settings: Settings, api: PrefectApi, tenant: str, environ: Mapping[str, str]
) -> AgentLaunch:
    """Check that the agent can run here, then decide how to start it (nothing written)."""
    with timed("preflight"):
        preflight(settings, environ)
    mounts: List[Mount] = []
    additions = FlowRunAdditions()
    container: Dict[str, Any] = {}
    if settings.agent_type is AgentType.docker:
        for warning in volume_warnings(settings.docker_volumes):
            logger.warning("%s", warning)
        container = own_container(docker_engine_url(settings.docker_base_url, environ))
        mounts = own_mounts(container)
        additions = combine(
            ca_for_docker_flow_runs(environ, mounts),
            docker_flow_run_api(api.config.url, settings.docker_networks),
        )
    if settings.flow_run_extras:
        additions = combine(additions, extras_for_flow_runs(environ, mounts))
    for warning in additions.warnings:
        logger.warning("%s", warning)
    launch = agent_launch(
        settings,
        api.config,
        tenant,
        environ,
        startup_seconds=STEPS,
        additions=additions,
        secret_env=read_env_files(settings),
    )
    if settings.agent_type is AgentType.docker:
        with timed("flow-run check"):
            check_flow_runs(settings, api, environ, launch, additions, container)
    return launch


def check_flow_runs(
    settings: Settings,
    api: PrefectApi,
    environ: Mapping[str, str],
    launch: AgentLaunch,
    additions: FlowRunAdditions,
    container: Mapping[str, Any],
) -> None:
    """Flow runs reach the API (bootstrap.startup.flow_run_check), before the agent polls."""
    import docker

    image = settings.docker_flow_run_check_image or (container.get("Config") or {}).get("Image")
    client = docker.APIClient(
        base_url=docker_engine_url(settings.docker_base_url, environ), version="auto", timeout=60
    )
    try:
        check_flow_runs_reach_api(
            client,
            settings.docker_flow_run_check,
            image,
            api.config.url,
            launch.env.get(FLOW_RUN_ENV),
            settings.docker_networks,
            [*settings.docker_volumes, *additions.volumes],
            prefect_settings(environ).get("server.port", "4200"),
        )
    finally:
        client.close()


def read_env_files(settings: Settings) -> Dict[str, str]:
    """agent_env_files: each flow-run variable's value from its file (masked from now on)."""
    values: Dict[str, str] = {}
    for name, path in settings.agent_env_files.items():
        try:
            values[name] = read_secret_file(path, f"BOOTSTRAP_AGENT_ENV_FILES {name}")
        except ValueError as exc:
            raise SettingsError(str(exc)) from None
    register_secrets(values.values())
    return values
