"""LUME-style flows end to end: registered and run the way lume-services' scheduling service
does it, on an agent configured as its compose stack configures one.

What is lume-services' here (re-created, our own code): the flow package installed into the
flow-run container (a wheel given in EXTRA_PIP_PACKAGES, or a mounted directory on
PYTHONPATH), Module storage, PrefectResult, the labels ``["lume-services"]``, the DockerRun its
Docker backend creates (image, labels, PREFECT__CONTEXT__PROJECT_NAME), the LUME_* settings
and the data volume its compose file gives flow runs, and ``run_and_return`` reading the task
results back through the API (tests/helpers/lume_services.py). Real parts: the engine, the
image, the agent, the flow-run containers. The Prefect Server is the API double.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Dict

import pytest

from testbed.agent_stand import FLOWS, FLOWS_IN_CONTAINER
from testbed.docker import wait_for_log
from testbed.lume_services import (
    FLOW_PACKAGE,
    FLOW_WHEEL,
    LUME_LABELS,
    docker_run,
    flow_package_wheel,
    register_lume_flow,
    run_and_return,
)

pytestmark = [pytest.mark.docker, pytest.mark.e2e]

DATA_ALIAS = "/lume-services/data"
WHEELS_IN_CONTAINER = "/lume/wheels"
# As lume-services' docker-compose.yml sets them for flow runs (the databases are not here).
LUME_ENV = {
    "LUME_BACKEND": "docker",
    "LUME_MOUNTED_FILESYSTEM__IDENTIFIER": "mounted",
    "LUME_MOUNTED_FILESYSTEM__MOUNT_PATH": "/data",
    "LUME_MOUNTED_FILESYSTEM__MOUNT_ALIAS": DATA_ALIAS,
    "LUME_MOUNTED_FILESYSTEM__MOUNT_TYPE": "DirectoryOrCreate",
    "LUME_MODEL_DB__HOST": "mysql",
    "LUME_MODEL_DB__PORT": "3306",
    "LUME_MODEL_DB__USER": "root",
    "LUME_MODEL_DB__PASSWORD": "lume-model-db-password",
    "LUME_MODEL_DB__DATABASE": "model_db",
    "LUME_RESULTS_DB__HOST": "mongodb",
    "LUME_PREFECT__SERVER__HOST": "http://apollo",
    "LUME_PREFECT__SERVER__HOST_PORT": "4200",
    "LUME_PREFECT__BACKEND": "server",
}


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    path.chmod(0o777)  # the flow-run container's user writes here
    return path


@pytest.fixture
def lume_agent(docker_agent_stand, data_dir: Path, tmp_path: Path):
    """The agent as lume-services' compose stack runs one: its label, its flow-run settings."""
    wheels = tmp_path / "wheels"
    flow_package_wheel(wheels)
    volumes = [
        f"{FLOWS}:{FLOWS_IN_CONTAINER}:ro",
        f"{wheels}:{WHEELS_IN_CONTAINER}:ro",
        f"{data_dir}:{DATA_ALIAS}",
    ]
    docker_agent_stand.start_agent(
        BOOTSTRAP_AGENT_LABELS=",".join(LUME_LABELS),
        BOOTSTRAP_PROJECTS="test",
        BOOTSTRAP_AGENT_ENV="\n".join(f"{name}={value}" for name, value in LUME_ENV.items()),
        BOOTSTRAP_DOCKER_VOLUMES=",".join(volumes),
    )
    return docker_agent_stand


def register(stand) -> str:
    return register_lume_flow(stand.api.url, stand.tenant_id, "test")


def check_results(results: Dict[str, object], data_dir: Path, filename: str) -> None:
    assert results["project_name-1"] == "test"
    settings = results["lume_settings-1"]
    password = hashlib.sha256(LUME_ENV["LUME_MODEL_DB__PASSWORD"].encode()).hexdigest()
    assert settings == {**LUME_ENV, "LUME_MODEL_DB__PASSWORD": password}
    assert results["save_text-1"] == f"{DATA_ALIAS}/{filename}"
    assert (data_dir / filename).read_text() == "hey you"  # through the data volume


def test_a_lume_flow_installed_from_a_wheel_runs_and_returns_its_results(
    lume_agent, data_dir: Path
) -> None:
    stand = lume_agent
    flow_id = register(stand)
    run_config = docker_run(
        stand.image,
        "test",
        env={"EXTRA_PIP_PACKAGES": f"{WHEELS_IN_CONTAINER}/{FLOW_WHEEL}"},
    )
    parameters = {"text": "hey you", "filename": "wheel.txt"}
    results = run_and_return(stand.api.url, stand.tenant_id, flow_id, run_config, parameters)
    check_results(results, data_dir, "wheel.txt")
    # The password reached the flow run but never the agent's output.
    assert LUME_ENV["LUME_MODEL_DB__PASSWORD"] not in stand.agent_logs()


def test_a_lume_flow_from_a_mounted_directory_on_pythonpath(lume_agent, data_dir: Path) -> None:
    stand = lume_agent
    flow_id = register(stand)
    run_config = docker_run(stand.image, "test", env={"PYTHONPATH": FLOWS_IN_CONTAINER})
    parameters = {"text": "hey you", "filename": "mounted.txt"}
    results = run_and_return(stand.api.url, stand.tenant_id, flow_id, run_config, parameters)
    check_results(results, data_dir, "mounted.txt")


def test_without_its_package_a_lume_flow_run_fails_naming_the_module(lume_agent) -> None:
    """The control: Module storage really imports the package in the flow-run container."""
    stand = lume_agent
    flow_id = register(stand)
    with pytest.raises(RuntimeError, match="failed"):
        run_and_return(
            stand.api.url,
            stand.tenant_id,
            flow_id,
            docker_run(stand.image, "test"),
            {"text": "x", "filename": "none.txt"},
        )
    wait_for_log(stand.agent, re.escape(f"No module named '{FLOW_PACKAGE}'"), timeout=30)
