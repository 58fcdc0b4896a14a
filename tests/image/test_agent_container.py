"""The bootstrap inside the built image: first and second start, a real agent, clean stop."""

from __future__ import annotations

import time

import pytest
import requests

from testbed.docker import HOST_SOCKET, socket_gid, wait_for_health, wait_for_log
from testbed.net import free_port

pytestmark = pytest.mark.docker

AGENT_READY = r"Waiting for flow runs\.\.\."
FAST_HEALTHCHECK = {"interval": 500_000_000, "timeout": 5_000_000_000, "retries": 3}


def start_agent(containers, image: str, prefect_api, port: int, **extra_env):
    environment = {
        "PREFECT__CLOUD__API": prefect_api.url,
        "BOOTSTRAP_TENANT": "LUME",
        "BOOTSTRAP_PROJECTS": "lume,models",
        "BOOTSTRAP_AGENT_LABELS": "lume,docker",
        "BOOTSTRAP_AGENT_ADDRESS": f"http://:{port}",
        **extra_env,
    }
    return containers.run(
        image,
        environment=environment,
        volumes={HOST_SOCKET: {"bind": HOST_SOCKET, "mode": "rw"}},
        group_add=[socket_gid()],
        healthcheck=FAST_HEALTHCHECK,  # the image's own check command, probed more often
    )


def test_first_and_second_start_then_a_healthy_agent(containers, any_image, prefect_api) -> None:
    port = free_port()
    first = start_agent(containers, any_image, prefect_api, port)
    wait_for_log(first, AGENT_READY, timeout=90)

    (tenant,) = prefect_api.tenants()
    assert tenant["slug"] == "lume"
    assert sorted(p["name"] for p in prefect_api.projects(tenant["id"])) == ["lume", "models"]
    (agent,) = prefect_api.agents()
    assert agent["type"] == "DockerAgent"
    assert sorted(agent["labels"]) == ["docker", "lume"]
    assert agent["tenant_id"] == tenant["id"]
    assert requests.get(f"http://127.0.0.1:{port}/api/health", timeout=5).status_code == 200
    assert wait_for_health(first) == "healthy"

    first.stop(timeout=30)
    prefect_api.clear_requests()
    second = start_agent(containers, any_image, prefect_api, port)
    wait_for_log(second, AGENT_READY, timeout=90)
    assert prefect_api.fields_called("mutation").count("register_agent") == 1
    assert [
        name for name in prefect_api.fields_called("mutation") if name.startswith("create")
    ] == []
    assert len(prefect_api.tenants()) == 1
    assert len(prefect_api.projects()) == 2
    assert "Using tenant 'lume'" in second.logs().decode()


def test_docker_stop_is_quick_and_the_agent_shuts_down_itself(
    containers, any_image, prefect_api
) -> None:
    container = start_agent(containers, any_image, prefect_api, free_port())
    wait_for_log(container, AGENT_READY, timeout=90)
    started = time.monotonic()
    container.stop(timeout=30)  # SIGINT (the image's STOPSIGNAL), SIGKILL after 30 s
    elapsed = time.monotonic() - started
    container.reload()
    assert container.attrs["State"]["ExitCode"] == 0  # not 137: it was not killed
    assert elapsed < 20  # well inside the 30 s (slack for a host busy with other containers)
    assert "Keyboard interrupt received! Shutting down..." in container.logs().decode()


def test_unhealthy_while_the_server_is_missing(containers, any_image, prefect_api) -> None:
    """While the bootstrap waits, the container is not (yet) healthy."""
    prefect_api.stop()
    container = start_agent(
        containers, any_image, prefect_api, free_port(), BOOTSTRAP_WAIT_TIMEOUT="60"
    )
    wait_for_log(container, "not ready", timeout=30)
    result = container.exec_run(["prefect-agent-bootstrap", "healthcheck"])
    assert result.exit_code == 1
    assert b"has not started yet" in result.output


# What a new user types -----------------------------------------------------------------------


@pytest.mark.parametrize("word", ["--help", "help", "-h"])
def test_help_after_the_image_name_prints_the_bootstraps_help(
    containers, prod_image: str, word: str
) -> None:
    result = containers.run_to_end(prod_image, [word], environment={"EXTRA_PIP_PACKAGES": "x"})
    assert result.exit_code == 0, result
    assert "Usage: prefect-agent-bootstrap [OPTIONS] COMMAND" in result.output
    assert "Installing extra packages" not in result.output  # help does nothing else


def test_a_bootstrap_command_after_the_image_name_runs_it(containers, prod_image: str) -> None:
    result = containers.run_to_end(
        prod_image, ["settings"], environment={"BOOTSTRAP_TENANT": "lume"}
    )
    assert result.exit_code == 0, result
    assert "tenant: lume" in result.output


def test_an_unwritable_output_directory_is_named_not_a_bug(containers, prod_image: str) -> None:
    result = containers.run_to_end(
        prod_image,
        [
            "kubernetes",
            "manifest",
            "--kubernetes-image",
            "lume/agent:1",
            "--output-dir",
            "/usr/out",
        ],
    )
    assert result.exit_code == 1, result
    assert (
        "cannot write the kustomize base to /usr/out: Permission denied (uid 1000" in result.output
    )
    assert "a bug" not in result.output
