"""The start-up sequence as plain functions: connect, wait, tenant, projects, then the
agent's launch. Each returns what it decided; the CLI is a thin shell over them, and
``prefect-agent-bootstrap run`` is :func:`run`."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional
from urllib.parse import urlsplit

from bootstrap.agent import AgentLaunch, agent_launch, exec_agent
from bootstrap.engine import docker_engine_url
from bootstrap.errors import BootstrapError, SettingsError
from bootstrap.flowrun import (
    NO_PROXY_VARIABLES,
    FlowRunAdditions,
    Mount,
    ca_for_docker_flow_runs,
    combine,
    docker_flow_run_api,
    extras_for_flow_runs,
    no_proxy,
    own_mounts,
)
from bootstrap.log import logger, register_secrets
from bootstrap.preflight import preflight
from bootstrap.projects import ensure_projects
from bootstrap.secrets import read_secret_file
from bootstrap.server import PrefectApi, resolve_api
from bootstrap.settings import AgentType, Settings
from bootstrap.settings.rules import volume_warnings
from bootstrap.tenant import ensure_tenant, find_tenant
from bootstrap.timings import STEPS, timed
from bootstrap.wait import wait_for_server


def connect(environ: Mapping[str, str]) -> PrefectApi:
    """A client for the server Prefect's configuration names (its key masked in logs). With
    proxy variables set, the server stays direct (NO_PROXY), for this process and the agent."""
    config = resolve_api(environ)
    bypass = no_proxy(environ, config.url, kubernetes=False)
    if bypass is not None and environ is os.environ:
        os.environ.update({name: bypass for name in NO_PROXY_VARIABLES})
    if config.api_key:
        register_secrets([config.api_key])
        parts = urlsplit(config.url)
        if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
            logger.warning(
                "PREFECT__CLOUD__API_KEY is sent in clear (http://) to %s: use https://",
                parts.hostname,
            )
    return PrefectApi(config)


def is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def tenant_id(api: PrefectApi, settings: Settings) -> str:
    """Find or create the tenant."""
    return ensure_tenant(api, settings.tenant, settings.tenant_slug)


def existing_tenant_id(api: PrefectApi, settings: Settings) -> str:
    """The tenant, which must exist already."""
    found = find_tenant(api, settings.tenant_slug)
    if found is None:
        raise BootstrapError(
            f"tenant {settings.tenant_slug!r} does not exist: run "
            "'prefect-agent-bootstrap tenant' first, or pass --tenant-id"
        )
    return found


def projects(api: PrefectApi, settings: Settings) -> Dict[str, str]:
    """Find or create the tenant and its projects: name -> id."""
    return ensure_projects(api, tenant_id(api, settings), settings.projects)


@dataclass(frozen=True)
class Prepared:
    """What the server side of the start-up decided."""

    api: PrefectApi
    tenant_id: str
    project_ids: Dict[str, str]


def prepare(settings: Settings, environ: Mapping[str, str]) -> Prepared:
    """Wait for the server, then make sure the tenant and the projects exist."""
    api = connect(environ)
    with timed("wait"):
        wait_for_server(api, settings.wait_timeout)
    with timed("tenant"):
        tenant = tenant_id(api, settings)
    with timed("projects"):
        project_ids = ensure_projects(api, tenant, settings.projects)
    return Prepared(api, tenant, project_ids)


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
    secret_env = read_env_files(settings)
    return agent_launch(
        settings,
        api.config,
        tenant,
        environ,
        startup_seconds=STEPS,
        additions=additions,
        secret_env=secret_env,
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


def run(settings: Settings, environ: Optional[Mapping[str, str]] = None) -> None:
    """The whole sequence, ending in the agent replacing this process."""
    environ = os.environ if environ is None else environ
    started = time.monotonic()
    prepared = prepare(settings, environ)
    launch = launch_agent(settings, prepared.api, prepared.tenant_id, environ)
    logger.info("Bootstrap done in %.2f s", time.monotonic() - started)
    exec_agent(launch)
