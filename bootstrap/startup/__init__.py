"""The start-up sequence, in order (``prefect-agent-bootstrap run``). What runs before it,
as root, is :mod:`bootstrap.root`; what runs after it, the agent's life, :mod:`bootstrap.agent`.

  1. wait      the Prefect Server answers             (step1_wait)
  2. tenant    find or create the tenant              (step2_tenant)
  3. projects  find or create each project            (step3_projects)
  4. preflight the agent can run here                 (step4_preflight)
  5. launch    decide the agent's command, exec it    (step5_launch)
"""

from __future__ import annotations

import os
import time
from typing import Mapping, Optional

from bootstrap.agent.command import exec_agent
from bootstrap.api.connect import connect
from bootstrap.settings import Settings
from bootstrap.startup.step1_wait import wait_for_server
from bootstrap.startup.step2_tenant import ensure_tenant
from bootstrap.startup.step3_projects import ensure_projects
from bootstrap.startup.step5_launch import launch_agent
from bootstrap.util.log import logger
from bootstrap.util.timings import timed


def run(settings: Settings, environ: Optional[Mapping[str, str]] = None) -> None:
    """The whole sequence, ending in the agent replacing this process."""
    environ = os.environ if environ is None else environ
    started = time.monotonic()
    api = connect(environ)
    with timed("wait"):
        wait_for_server(api, settings.wait_timeout)
    with timed("tenant"):
        tenant = ensure_tenant(api, settings.tenant, settings.tenant_slug)
    with timed("projects"):
        ensure_projects(api, tenant, settings.projects)
    launch = launch_agent(settings, api, tenant, environ)  # times "preflight" itself
    logger.info("Bootstrap done in %.2f s", time.monotonic() - started)
    exec_agent(launch)
