"""The end-to-end stand, a Docker agent container from the image against the API
double, with flows mounted into its flow-run containers.

- ``docker_agent_stand``: a :class:`DockerAgentStand` on the dev image (the e2e suite, the
  reliability suite and the benchmarks use it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

from prefect.run_configs import DockerRun
from prefect.storage import Local

from prefect_api_double import PrefectApiDouble
from prefect_api_double.registration import create_flow_run, load_flow, register_flow
from testbed.docker import HOST_SOCKET, socket_gid, wait_for_log
from testbed.flow_runs import AGENT_READY
from testbed.net import free_port

FLOWS = Path(__file__).resolve().with_name("flows")
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

    def start_agent(
        self,
        volumes: Optional[Dict[str, Dict[str, str]]] = None,
        group_add: Optional[List[str]] = None,
        run_options: Optional[Dict[str, Any]] = None,
        **extra_env: str,
    ):
        """Start the agent container and wait until it polls; ``volumes`` replaces the
        Docker socket mount (e.g. a socket proxy's directory, with ``DOCKER_HOST``),
        ``group_add`` the socket's group (the image runs as uid 1000), ``run_options`` are
        more ``docker run`` options (user, read_only, tmpfs)."""
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
            volumes=volumes or {HOST_SOCKET: {"bind": HOST_SOCKET, "mode": "rw"}},
            group_add=group_add or [socket_gid()],
            **(run_options or {}),
        )
        wait_for_log(self.agent, AGENT_READY, timeout=120)
        (tenant,) = self.api.tenants()
        self.tenant_id = tenant["id"]
        return self.agent

    def start_stock_agent(self, name: str = "stock-agent"):
        """prefect 1.2.4's own Docker agent (``prefect agent docker start``, no launcher) in
        the same image, with the stand's options; the stand's agent must have registered
        the tenant first."""
        command = ["prefect", "agent", "docker", "start", "--no-pull", "--network", "host"]
        command += ["--volume", f"{FLOWS}:{FLOWS_IN_CONTAINER}:ro", "--name", name]
        command += ["--agent-address", f"http://:{free_port()}"]
        for label in AGENT_LABELS:
            command += ["--label", label]
        agent = self.containers.run(
            self.image,
            command,
            environment={
                "PREFECT__BACKEND": "server",
                "PREFECT__CLOUD__API": self.api.url,
                "PREFECT__CLOUD__TENANT_ID": self.tenant_id,
            },
            volumes={HOST_SOCKET: {"bind": HOST_SOCKET, "mode": "rw"}},
            group_add=[socket_gid()],
        )
        wait_for_log(agent, AGENT_READY, timeout=120)
        return agent

    def register(
        self,
        script: str,
        labels: List[str] = ("lume",),
        host_config: Optional[dict] = None,
        name: Optional[str] = None,
        env: Optional[Dict[str, str]] = None,
        image: Optional[str] = None,
    ) -> str:
        """Register the flow in ``script`` (as ``name``: another name is another flow, whose
        registration does not archive this one and cancel its runs), its runs in ``image``
        (default: the stand's)."""
        flow = load_flow(str(FLOWS / script))
        if name:
            flow.name = name
        flow.storage = Local(
            path=f"{FLOWS_IN_CONTAINER}/{script}", stored_as_script=True, add_default_labels=False
        )
        flow.storage.add_flow(flow)  # what build=True would do; the script is mounted instead
        flow.run_config = DockerRun(
            image=image or self.image, labels=list(labels), host_config=host_config, env=env
        )
        return register_flow(flow, self.api.url, "lume", tenant_id=self.tenant_id, build=False)

    def run(self, flow_id: str, **kwargs) -> str:
        return create_flow_run(self.api.url, flow_id=flow_id, tenant_id=self.tenant_id, **kwargs)

    def agent_logs(self) -> str:
        return self.agent.logs().decode(errors="replace") if self.agent else ""
