"""Before it polls, the Docker agent checks that its flow runs reach the API the way a flow
run will (bootstrap.startup.flow_run_check): a flow-run network that cannot, or an API URL
only the agent resolves, stops it with exit 5 within seconds naming the URL, before it
registers or takes a run; ``warn`` starts it anyway; a reachable API costs one container."""

from __future__ import annotations

import time

import pytest

from bootstrap.startup import flow_run_check
from testbed.docker import HOST_SOCKET, socket_gid
from testbed.net import free_port

pytestmark = [pytest.mark.docker, pytest.mark.e2e]

CHECK_LABEL = "io.prefect-agent.flow-run-check"


def agent(containers, image, api_url, **env):
    environment = {
        "PREFECT__CLOUD__API": api_url,
        "BOOTSTRAP_AGENT_ADDRESS": f"http://127.0.0.1:{free_port()}",
        "BOOTSTRAP_DOCKER_NETWORKS": "host",
        **env,
    }
    return dict(
        image=image,
        environment=environment,
        volumes={HOST_SOCKET: {"bind": HOST_SOCKET, "mode": "rw"}},
        group_add=[socket_gid()],
    )


def test_flow_runs_on_a_network_without_the_api_stop_the_agent(
    containers, prod_image, prefect_api, prefect_api_tenant, docker_client
) -> None:
    options = agent(containers, prod_image, prefect_api.url, BOOTSTRAP_DOCKER_NETWORKS="none")
    started = time.monotonic()
    result = containers.run_to_end(**options, timeout=120)
    took = time.monotonic() - started
    assert result.exit_code == 5, result.stderr
    # the URL a flow run off the host network gets for a server on this host's loopback
    port = prefect_api.url.rsplit(":", 1)[1]
    flow_run_url = f"http://host.docker.internal:{port}"
    assert f"flow runs cannot reach the Prefect Server at {flow_run_url}" in result.stderr
    assert "network 'none'" in result.stderr
    assert "Traceback" not in result.stderr
    assert took < flow_run_check.TIMEOUT - 10, took  # an answer, not the check's timeout
    assert prefect_api.agents() == []  # it never registered, so it took no run
    assert "get_runs_in_queue" not in prefect_api.fields_called()
    # this agent's check container is removed (other workers' agents run checks meanwhile:
    # theirs ask other servers)
    mine = f"PREFECT__CLOUD__API={flow_run_url}"
    checks = docker_client.containers.list(
        all=True, ignore_removed=True, filters={"label": CHECK_LABEL}
    )
    assert [c for c in checks if mine in c.attrs["Config"]["Env"]] == []


def test_an_api_url_only_the_agent_resolves_stops_it(
    containers, prod_image, prefect_api, prefect_api_tenant
) -> None:
    """The agent's container knows the name (--add-host); a flow run's does not."""
    url = prefect_api.url.replace("127.0.0.1", "prefect-api.internal")
    options = agent(containers, prod_image, url)
    result = containers.run_to_end(
        **options, extra_hosts={"prefect-api.internal": "127.0.0.1"}, timeout=120
    )
    assert result.exit_code == 5, result.stderr
    assert f"flow runs cannot reach the Prefect Server at {url}" in result.stderr
    assert prefect_api.agents() == []


def test_warn_starts_the_agent_anyway_and_says_why(
    containers, prod_image, prefect_api, prefect_api_tenant
) -> None:
    options = agent(
        containers, prod_image, prefect_api.url,
        BOOTSTRAP_DOCKER_NETWORKS="none", BOOTSTRAP_DOCKER_FLOW_RUN_CHECK="warn",
    )  # fmt: skip
    container = containers.run(**options)
    prefect_api.wait_until(prefect_api.agents, 120, what="the agent registered")
    logs = container.logs().decode(errors="replace")
    assert "WARNING" in logs
    assert "flow runs cannot reach the Prefect Server" in logs
