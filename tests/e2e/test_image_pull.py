"""BOOTSTRAP_DOCKER_PULL_POLICY through the prod image's Docker agent, against a real
registry on 127.0.0.1 that asks for credentials (Debian's docker-registry with htpasswd):
IfNotPresent pulls a missing image once, with the credentials of a mounted config.json that
no flow run sees; an image the registry lacks ends its run Failed naming the image."""

from __future__ import annotations

import re

import pytest

from testbed.agent_stand import DockerAgentStand
from testbed.docker import HOST_SOCKET
from testbed.flow_runs import flow_run_containers, wait_final

pytestmark = [pytest.mark.docker, pytest.mark.e2e]

CONFIG_IN_AGENT = "/run/secrets/docker-config.json"
PASSWORD = "pull-s3cret-e2e"  # noqa: S105  (the test registry's, made here)


@pytest.fixture
def stand(prefect_api, containers, prod_image) -> DockerAgentStand:
    return DockerAgentStand(prefect_api, containers, prod_image)


@pytest.fixture(scope="module")
def registry(local_registry):
    return local_registry(user="lume", password=PASSWORD)


@pytest.fixture
def flow_image(registry, docker_client, prod_image, request):
    """The prod image in the registry, under a repository of this test's own (the registry
    is the module's: each test counts the pulls of its own repository)."""
    repository = "lume/" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[5:45].strip("-")
    reference = registry.push(docker_client, prod_image, f"{repository}:e2e")
    yield reference
    for image in docker_client.images.list(name=reference.rsplit(":", 1)[0]):
        docker_client.images.remove(image.id if not image.tags else reference, force=True)


def repository_of(reference: str) -> str:
    """``127.0.0.1:PORT/lume/x:e2e`` -> ``lume/x``."""
    return reference.split("/", 1)[1].rsplit(":", 1)[0]


def start_agent(stand, registry, tmp_path, **env):
    config = registry.docker_config(tmp_path / "config.json")
    config.chmod(0o644)  # the agent runs as uid 1000
    return stand.start_agent(
        volumes={
            HOST_SOCKET: {"bind": HOST_SOCKET, "mode": "rw"},
            str(config): {"bind": CONFIG_IN_AGENT, "mode": "ro"},
        },
        BOOTSTRAP_DOCKER_NO_PULL="false",
        BOOTSTRAP_DOCKER_CONFIG_FILE=CONFIG_IN_AGENT,
        BOOTSTRAP_DOCKER_FAILED_CONTAINER_RETENTION="600",
        **env,
    )


def test_if_not_present_pulls_once_with_the_mounted_credentials(
    stand, registry, flow_image, prefect_api, docker_client, tmp_path
) -> None:
    agent = start_agent(stand, registry, tmp_path, BOOTSTRAP_DOCKER_PULL_POLICY="IfNotPresent")
    flow_id = stand.register("no_registry_credentials.py", image=flow_image)
    first = stand.run(flow_id)
    assert wait_final(prefect_api, [first], timeout=240) == {first: "Success"}, stand.agent_logs()
    assert registry.requests_for(repository_of(flow_image)) == 1
    second = stand.run(flow_id)
    assert wait_final(prefect_api, [second], timeout=240) == {second: "Success"}
    assert registry.requests_for(repository_of(flow_image)) == 1  # present now: not pulled again
    assert f"Pulled image {flow_image}" in stand.agent_logs()
    # the credentials stay in the file: not in the agent's configuration, not in a flow run's
    agent.reload()
    assert PASSWORD not in str(agent.attrs["Config"])
    logs = "\n".join(log["message"] for log in prefect_api.logs(second))
    assert PASSWORD not in logs + stand.agent_logs()


def test_an_image_the_registry_lacks_ends_its_run_failed_naming_it(
    stand, registry, flow_image, prefect_api, tmp_path
) -> None:
    start_agent(
        stand, registry, tmp_path,
        BOOTSTRAP_DOCKER_PULL_POLICY="Always", BOOTSTRAP_DOCKER_PULL_ATTEMPTS="2",
    )  # fmt: skip
    missing = flow_image.replace(":e2e", ":no-such-tag")  # its repository is there
    run = stand.run(stand.register("squares.py", image=missing, name="missing image"))
    assert wait_final(prefect_api, [run], timeout=120) == {run: "Failed"}
    message = prefect_api.flow_run(run)["serialized_state"]["message"]
    assert f"Image pull of {missing} failed (2 attempts)" in message, message
    assert "not found" in message or "unknown" in message, message
    fine = stand.run(stand.register("squares.py", image=flow_image))
    assert wait_final(prefect_api, [fine], timeout=240) == {fine: "Success"}


def test_never_refuses_an_image_the_engine_lacks(
    stand, registry, flow_image, prefect_api, docker_client, tmp_path
) -> None:
    start_agent(stand, registry, tmp_path, BOOTSTRAP_DOCKER_PULL_POLICY="Never")
    run = stand.run(stand.register("squares.py", image=flow_image))
    assert wait_final(prefect_api, [run], timeout=120) == {run: "Failed"}
    message = prefect_api.flow_run(run)["serialized_state"]["message"]
    assert f"Image {flow_image} is not on the agent's Docker engine" in message, message
    assert registry.requests_for(repository_of(flow_image)) == 0
    assert not flow_run_containers(docker_client, run)
