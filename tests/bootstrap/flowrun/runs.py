"""Runs of testbed/flows/sleeps.py in the API double, and the environment prefect's agents
give a flow-run process, for the tests of bootstrap.flowrun."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Dict, Optional

from prefect.storage import Local

from prefect_api_double import PrefectApiDouble, registration
from testbed.agent_stand import FLOWS
from tests.fixtures.prefect_api import prefect_env

FLOW_RUNNER = [sys.executable, "-m", "bootstrap.flowrun", "execute", "flow-run"]


def sleeps_run(api: PrefectApiDouble, tenant_id: str, seconds: Optional[float] = None) -> str:
    """A run of the flow that sleeps (600 s unless ``seconds``), in a new project."""
    api.create_project("proj", tenant_id)
    flow = registration.load_flow(str(FLOWS / "sleeps.py"))
    flow.storage = Local(path=str(FLOWS / "sleeps.py"), stored_as_script=True)
    flow.storage.add_flow(flow)
    flow_id = registration.register_flow(flow, api.url, "proj", build=False)
    parameters = None if seconds is None else {"seconds": seconds}
    return registration.create_flow_run(api.url, flow_id=flow_id, labels=[], parameters=parameters)


def role_env(api: PrefectApiDouble, run_id: str) -> Dict[str, str]:
    return {"PREFECT__CONTEXT__FLOW_RUN_ID": run_id, "PREFECT__CLOUD__API": api.url}


def runner_env(api: PrefectApiDouble, run_id: str, tenant_id: str, home, **extra) -> Dict[str, str]:
    """What prefect's agents give a flow-run process (populate_env_vars), for ``api``."""
    return prefect_env(
        api.url,
        tenant_id,
        home,
        **role_env(api, run_id),
        PREFECT__ENGINE__FLOW_RUNNER__DEFAULT_CLASS="prefect.engine.cloud.CloudFlowRunner",
        PREFECT__ENGINE__TASK_RUNNER__DEFAULT_CLASS="prefect.engine.cloud.CloudTaskRunner",
        **extra,
    )


def start_runner(env: Dict[str, str]) -> subprocess.Popen:
    """Prefect's flow runner under ``python -m bootstrap.flowrun``, as the image runs it."""
    return subprocess.Popen(
        FLOW_RUNNER, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def sleeping_task_run(api: PrefectApiDouble, run_id: str) -> Optional[dict]:
    return next((t for t in api.task_runs(run_id) if t["task_name"] == "sleep_long"), None)


def wait_task_running(api: PrefectApiDouble, run_id: str, runner: subprocess.Popen) -> None:
    """Until the run's sleeping task is Running (or the runner ended: an error)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        task_run = sleeping_task_run(api, run_id)
        if task_run and task_run["state"] == "Running":
            return
        if runner.poll() is not None:
            raise AssertionError(f"the runner ended ({runner.returncode}): {runner.stdout.read()}")
        time.sleep(0.2)
    raise AssertionError("the run's task never started")
