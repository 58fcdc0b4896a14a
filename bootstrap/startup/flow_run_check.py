"""Before a Docker agent polls: can its flow runs reach the Prefect Server?

Prefect users' most common first failure (Prefect #4963, Server #25): the agent registers and
stays healthy, and every flow-run container fails to reach the API (``host.docker.internal``
that does not answer, a compose network, a proxy), so runs sit in Submitted. This check
starts one short-lived container the way the agent will start a flow run -- its image, the
flow runs' networks, volumes and variables, and the API URL prefect's Docker agent gives
them (:func:`flow_run_api_url`) -- which asks the API ``query { hello }`` with ``requests``,
as a flow run's client would. On failure the agent does not start (exit 5), naming the URL,
the network and the error; ``BOOTSTRAP_DOCKER_FLOW_RUN_CHECK=warn`` logs it instead,
``off`` skips it.

The decisions (the URL, the container) are pure; :func:`check_flow_runs_reach_api` acts.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

from bootstrap.flowrun.reach import PROBE
from bootstrap.util.errors import PreflightError
from bootstrap.util.log import logger

CHECK_LABEL = "io.prefect-agent.flow-run-check"
TIMEOUT = 60.0


def flow_run_api_url(
    api_url: str, flow_run_env: Mapping[str, str], networks: Sequence[str], server_port: str
) -> str:
    """The API URL a Docker flow run gets, as prefect 1.2.4's ``DockerAgent.
    populate_env_vars`` decides it: a URL containing ``localhost`` becomes
    ``http://host.docker.internal:<server.port>`` (``http://apollo:<port>`` on the network
    ``prefect-server``), its own port and path dropped; the agent's flow-run variables
    (``--env``, here ``PREFECT__CLOUD__AGENT__ENV_VARS``) override it."""
    if "localhost" in api_url:
        if "prefect-server" in networks:
            api_url = f"http://apollo:{server_port}"
        else:
            api_url = f"http://host.docker.internal:{server_port}"
    return flow_run_env.get("PREFECT__CLOUD__API", api_url)


@dataclass(frozen=True)
class CheckContainer:
    """What the check creates: the docker SDK's create_container arguments, and the
    networks to connect after creation (prefect connects the first at creation)."""

    image: str
    environment: Dict[str, str]
    network: Optional[str]
    more_networks: List[str] = field(default_factory=list)
    binds: List[str] = field(default_factory=list)

    def host_config(self) -> Dict[str, Any]:
        config: Dict[str, Any] = {"extra_hosts": {"host.docker.internal": "host-gateway"}}
        if self.binds:
            config["binds"] = list(self.binds)
        if self.network in ("host", "none"):
            config["network_mode"] = self.network
        return config


def check_container(
    image: str,
    api_url: str,
    flow_run_env: Mapping[str, str],
    networks: Sequence[str],
    volumes: Sequence[str],
) -> CheckContainer:
    environment = {**flow_run_env, "PREFECT__CLOUD__API": api_url, "PREFECT__BACKEND": "server"}
    first = networks[0] if networks else None
    return CheckContainer(image, environment, first, list(networks[1:]), list(volumes))


def describe_network(networks: Sequence[str]) -> str:
    return f"network {networks[0]!r}" if networks else "Docker's default network"


def run_check(client: Any, spec: CheckContainer, timeout: float = TIMEOUT) -> Optional[str]:
    """Run the check container on the engine of ``client`` (a docker.APIClient); the
    problem it met, or None."""
    import docker

    networking = None
    if spec.network and spec.network not in ("host", "none"):
        networking = client.create_networking_config(
            {spec.network: client.create_endpoint_config()}
        )
    created = client.create_container(
        spec.image,
        entrypoint=["python", "-c", PROBE],
        command=[],
        environment=spec.environment,
        labels={CHECK_LABEL: "true"},
        host_config=client.create_host_config(**spec.host_config()),
        networking_config=networking,
    )
    container = created["Id"]
    try:
        for network in spec.more_networks:
            client.connect_container_to_network(container, network)
        client.start(container)
        try:
            exit_code = client.wait(container, timeout=timeout)["StatusCode"]
        except Exception:  # requests' ReadTimeout: it hangs (a proxy, a firewall)
            return f"no answer within {timeout:.0f} s"
        if exit_code == 0:
            return None
        output = client.logs(container, stdout=True, stderr=True).decode(errors="replace")
        lines = [line for line in output.splitlines() if line.strip()]
        if not lines:
            return f"the check exited {exit_code}"
        # the probe's line names the URL too: keep what went wrong
        return lines[-1].partition(f"{spec.environment['PREFECT__CLOUD__API']}: ")[2] or lines[-1]
    finally:
        with contextlib.suppress(docker.errors.APIError):
            client.remove_container(container, force=True)


def check_flow_runs_reach_api(
    client: Any,
    mode: str,
    image: Optional[str],
    api_url: str,
    flow_run_env_json: Optional[str],
    networks: Sequence[str],
    volumes: Sequence[str],
    server_port: str,
) -> None:
    """The check (``mode``: error, warn or off); raises PreflightError (exit 5) in error mode."""
    if mode == "off":
        return
    if not image:
        logger.info(
            "Flow-run check skipped: no image to check with (the agent runs outside a "
            "container; set BOOTSTRAP_DOCKER_FLOW_RUN_CHECK_IMAGE)"
        )
        return
    flow_run_env = json.loads(flow_run_env_json) if flow_run_env_json else {}
    url = flow_run_api_url(api_url, flow_run_env, networks, server_port)
    spec = check_container(image, url, flow_run_env, networks, volumes)
    started = time.monotonic()
    try:
        problem = run_check(client, spec)
    except Exception as exc:  # the engine refused the container itself (no such network)
        problem = f"the check container could not run: {getattr(exc, 'explanation', exc)}"
    if problem is None:
        logger.info(
            "Flow runs reach the Prefect Server at %s (%s, checked in %.1f s)",
            url,
            describe_network(networks),
            time.monotonic() - started,
        )
        return
    message = (
        f"flow runs cannot reach the Prefect Server at {url} (a container of {image} on "
        f"{describe_network(networks)}, as a flow run starts): {problem}. Give flow runs a "
        "network that reaches it (BOOTSTRAP_DOCKER_NETWORKS) or the URL they should use "
        "(BOOTSTRAP_AGENT_ENV='PREFECT__CLOUD__API=...'); BOOTSTRAP_DOCKER_FLOW_RUN_CHECK="
        "warn starts the agent anyway"
    )
    if mode == "warn":
        logger.warning("%s", message)
        return
    raise PreflightError(message)
