"""End-to-end fixtures: a Docker agent container from the image, against the API double."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

import pytest
from prefect.run_configs import DockerRun
from prefect.storage import Local

from tests.fixtures.docker import wait_for_log
from tests.fixtures.net import free_port
from tests.prefect_api_double import PrefectApiDouble
from tests.prefect_api_double.registration import create_flow_run, load_flow, register_flow

FLOWS = Path(__file__).parent / "flows"
FLOWS_IN_CONTAINER = "/flows"
AGENT_LABELS = ["lume", "docker"]


class DockerAgentStand:
    """The scenario's moving parts: the double, the agent container, flows and runs."""

    def __init__(self, api: PrefectApiDouble, containers, image: str) -> None:
        self.api = api
        self.containers = containers
        self.image = image
        self.port = free_port()
        self.agent = None
        self.tenant_id = ""

    def start_agent(self, volumes: Optional[Dict[str, Dict[str, str]]] = None, **extra_env: str):
        """Start the agent container and wait until it polls; ``volumes`` replaces the
        Docker socket mount (e.g. a socket proxy's directory, with ``DOCKER_HOST``)."""
        environment: Dict[str, str] = {
            "PREFECT__CLOUD__API": self.api.url,
            "BOOTSTRAP_TENANT": "LUME",
            "BOOTSTRAP_PROJECTS": "lume",
            "BOOTSTRAP_AGENT_NAME": "e2e-docker-agent",
            "BOOTSTRAP_AGENT_LABELS": ",".join(AGENT_LABELS),
            "BOOTSTRAP_AGENT_ADDRESS": f"http://:{self.port}",
            # Flow-run containers: host network (the only one here), the flows directory.
            "BOOTSTRAP_DOCKER_NETWORKS": "host",
            "BOOTSTRAP_DOCKER_VOLUMES": f"{FLOWS}:{FLOWS_IN_CONTAINER}:ro",
            "BOOTSTRAP_DOCKER_NO_PULL": "true",
            **extra_env,
        }
        self.agent = self.containers.run(
            self.image,
            environment=environment,
            volumes=volumes
            or {"/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"}},
        )
        wait_for_log(self.agent, r"Waiting for flow runs\.\.\.", timeout=120)
        (tenant,) = self.api.tenants()
        self.tenant_id = tenant["id"]
        return self.agent

    def register(self, script: str, labels: List[str] = ("lume",)) -> str:
        flow = load_flow(str(FLOWS / script))
        flow.storage = Local(
            path=f"{FLOWS_IN_CONTAINER}/{script}", stored_as_script=True, add_default_labels=False
        )
        flow.storage.add_flow(flow)  # what build=True would do; the script is mounted instead
        flow.run_config = DockerRun(image=self.image, labels=list(labels))
        return register_flow(flow, self.api.url, "lume", tenant_id=self.tenant_id, build=False)

    def run(self, flow_id: str, **kwargs) -> str:
        return create_flow_run(self.api.url, flow_id=flow_id, tenant_id=self.tenant_id, **kwargs)

    def agent_logs(self) -> str:
        return self.agent.logs().decode(errors="replace") if self.agent else ""


@pytest.fixture
def docker_agent_stand(prefect_api, containers, dev_image) -> DockerAgentStand:
    return DockerAgentStand(prefect_api, containers, dev_image)
