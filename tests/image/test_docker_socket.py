"""A mounted Docker socket is usable by the non-root runtime user, whatever its group id:
added by the entrypoint when the container starts as root (the image's default), or given
with --group-add to a container started as the runtime user."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.docker

SOCKET = "/var/run/docker.sock"
LIST_CONTAINERS = (
    "import docker, os;"
    "names = [c.name for c in docker.from_env().containers.list()];"
    "print(os.getuid(), sorted(os.getgroups()), len(names))"
)
UNKNOWN_GID = 4242


def mount(path: str) -> dict:
    return {path: {"bind": SOCKET, "mode": "rw"}}


@pytest.mark.parametrize("user", [None, "0"], ids=["image-default", "user-0"])
def test_started_as_root_the_sockets_group_is_added_and_root_dropped(
    containers, any_image: str, docker_socket_proxy, user
) -> None:
    socket = docker_socket_proxy(uid=0, gid=UNKNOWN_GID, mode=0o660)
    unknown = containers.run_to_end(any_image, ["getent", "group", str(UNKNOWN_GID)])
    assert unknown.exit_code != 0  # the image has no group with that id

    result = containers.run_to_end(
        any_image, ["python", "-c", LIST_CONTAINERS], volumes=mount(socket), user=user
    )
    assert result.exit_code == 0, result
    uid, *_ = result.stdout.split()
    assert uid == "1000"
    assert str(UNKNOWN_GID) in result.stdout  # the socket's group was added
    assert "0" not in result.stdout.split("[")[1].split("]")[0].split(", ")  # not root's group


def test_the_runtime_user_with_group_add_uses_the_socket(
    containers, any_image: str, docker_socket_proxy
) -> None:
    socket = docker_socket_proxy(uid=0, gid=UNKNOWN_GID, mode=0o660)
    result = containers.run_to_end(
        any_image,
        ["python", "-c", LIST_CONTAINERS],
        volumes=mount(socket),
        user="1000",
        group_add=[str(UNKNOWN_GID)],
    )
    assert result.exit_code == 0, result
    assert result.stdout.startswith("1000 ")


def test_without_the_group_the_agent_explains(
    containers, dev_image: str, docker_socket_proxy, prefect_api
) -> None:
    """Started as the runtime user without the socket's group: a clear message and a
    non-zero exit, not a traceback (its advice is run in test_error_advice.py)."""
    socket = docker_socket_proxy(uid=0, gid=UNKNOWN_GID, mode=0o660)
    result = containers.run_to_end(
        dev_image,
        volumes=mount(socket),
        user="1000",
        environment={"PREFECT__CLOUD__API": prefect_api.url, "BOOTSTRAP_WAIT_TIMEOUT": "10"},
    )
    assert result.exit_code == 5, result
    assert "is not writable by uid 1000" in result.output
    assert f"--group-add {UNKNOWN_GID}" in result.output
    assert "Traceback" not in result.output
    assert prefect_api.agents() == []


def test_a_root_only_socket_keeps_root_rather_than_failing(
    containers, any_image: str, docker_socket_proxy
) -> None:
    socket = docker_socket_proxy(uid=0, gid=0, mode=0o600)
    result = containers.run_to_end(
        any_image, ["python", "-c", LIST_CONTAINERS], volumes=mount(socket), user="0"
    )
    assert result.exit_code == 0, result
    assert result.stdout.startswith("0 ")
    assert "usable by its owner only: staying root" in result.stderr


def test_no_socket_mounted_drops_to_the_user(containers, any_image: str) -> None:
    result = containers.run_to_end(any_image, ["id", "-u"], user="0")
    assert result.exit_code == 0, result
    assert result.stdout.strip() == "1000"
