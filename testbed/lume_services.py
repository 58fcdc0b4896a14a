"""Driving flow runs the way LUME-services' scheduling client does (its ``run_and_return``):
prefect 1.x's own ``Client.create_flow_run`` with a ``DockerRun`` carrying the project name,
``watch_flow_run`` until the run ends, then the task results read back through the API
(``FlowRunView``, ``TaskRunView.get_result``). Our own code, written from that client's
documented behaviour: every call below is prefect's, so the documents sent are the real ones.
"""

from __future__ import annotations

import datetime
import importlib
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from prefect.backend import FlowRunView
from prefect.backend.flow_run import watch_flow_run
from prefect.run_configs import DockerRun

from prefect_api_double.registration import client, register_flow, server_backend
from testbed.packages import make_wheel

LUME_LABELS = ["lume-services"]
# Our flow package written as lume-services writes its test flows (testbed/flows/).
FLOW_SOURCES = Path(__file__).resolve().with_name("flows")
FLOW_PACKAGE = "lume_e2e_flows"
FLOW_WHEEL = f"{FLOW_PACKAGE}-0.1.0-py3-none-any.whl"
# Prefect's config.toml as lume-services' compose stack mounts it into its agent (its shape)
LUME_CONFIG_TOML = """\
debug = true
home_dir = "~/.prefect"
backend = "server"

[server]
host = "http://apollo"
port = "4200"
host_port = "4200"
endpoint = "${server.host}:${server.port}"
"""


def flow_package_wheel(directory: Path) -> Path:
    """A real wheel of the flow package, ``directory / FLOW_WHEEL``."""
    source = FLOW_SOURCES / FLOW_PACKAGE
    modules = {f"{FLOW_PACKAGE}/{path.name}": path.read_text() for path in source.glob("*.py")}
    init = modules.pop(f"{FLOW_PACKAGE}/__init__.py")
    return make_wheel(directory, FLOW_PACKAGE, "0.1.0", module_text=init, extra_files=modules)


def load_flow(module: str):
    """Import a flow from the package's sources, as the scheduler's side imports it (anew:
    a flow object is registered once)."""
    for name in [name for name in sys.modules if name.split(".")[0] == FLOW_PACKAGE]:
        del sys.modules[name]
    sys.path.insert(0, str(FLOW_SOURCES))
    try:
        return importlib.import_module(f"{FLOW_PACKAGE}.{module}").flow
    finally:
        sys.path.remove(str(FLOW_SOURCES))


def register_lume_flow(api_url: str, tenant_id: str, project: str, module: str = "report") -> str:
    """``flow.register(project_name, labels=["lume-services"])``, as lume-services' tests do."""
    return register_flow(
        load_flow(module), api_url, project, tenant_id=tenant_id, labels=LUME_LABELS
    )


def docker_run(image: str, project_name: str, labels: Optional[List[str]] = None, **kwargs):
    """The run config LUME-services' Docker backend gives a run: its image and labels, and the
    project name in the environment."""
    env = {"PREFECT__CONTEXT__PROJECT_NAME": project_name, **kwargs.pop("env", {})}
    return DockerRun(image=image, labels=list(labels or LUME_LABELS), env=env, **kwargs)


def run_and_return(
    api_url: str,
    tenant_id: str,
    flow_id: str,
    run_config: Any,
    parameters: Optional[Dict[str, Any]] = None,
    task_name: Optional[str] = None,
    timeout: float = 120.0,
) -> Any:
    """Create a run, watch it to its end, and return its task results (slug -> value), or
    the one result of the task whose slug contains ``task_name``."""
    with server_backend(api_url, tenant_id):
        flow_run_id = client(api_url, tenant_id).create_flow_run(
            flow_id=flow_id, parameters=parameters, run_config=run_config
        )
        for _ in watch_flow_run(
            flow_run_id,
            stream_states=True,
            stream_logs=True,
            max_duration=datetime.timedelta(seconds=timeout),
        ):
            pass
        flow_run = FlowRunView.from_flow_run_id(flow_run_id)
        if flow_run.state.is_failed():
            raise RuntimeError(f"flow run {flow_run_id} failed: {flow_run.state.message}")
        results: Dict[str, Any] = {}
        for task_run in flow_run.get_all_task_runs():
            if not task_run.state.is_successful():
                raise RuntimeError(f"task {task_run.task_slug} of {flow_run_id} did not succeed")
            try:
                results[task_run.task_slug] = task_run.get_result()
            except ValueError:  # no result location: nothing was kept
                results[task_run.task_slug] = None
    if task_name is None:
        return results
    (value,) = [value for slug, value in results.items() if task_name in slug]
    return value
