"""Step 5: decide how the agent starts (its argv, environment and flow-run additions),
then exec it. The decision is :func:`launch_agent`; the act is ``exec_agent``."""

from __future__ import annotations

from typing import Dict, List, Mapping

from bootstrap.agent.command import AgentLaunch, agent_launch
from bootstrap.api.client import PrefectApi
from bootstrap.flowrun.additions import (
    FlowRunAdditions,
    Mount,
    ca_for_docker_flow_runs,
    combine,
    docker_flow_run_api,
    extras_for_flow_runs,
    own_mounts,
)
from bootstrap.settings import AgentType, Settings
from bootstrap.settings.rules import volume_warnings
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
    if settings.agent_type is AgentType.docker:
        for warning in volume_warnings(settings.docker_volumes):
            logger.warning("%s", warning)
        mounts = own_mounts(docker_engine_url(settings.docker_base_url, environ))
        additions = combine(
            ca_for_docker_flow_runs(environ, mounts),
            docker_flow_run_api(api.config.url, settings.docker_networks),
        )
    if settings.flow_run_extras:
        additions = combine(additions, extras_for_flow_runs(environ, mounts))
    for warning in additions.warnings:
        logger.warning("%s", warning)
    return agent_launch(
        settings,
        api.config,
        tenant,
        environ,
        startup_seconds=STEPS,
        additions=additions,
        secret_env=read_env_files(settings),
    )


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
