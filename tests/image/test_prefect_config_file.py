"""Prefect's own config.toml, mounted where lume-services' compose stack and the Prefect images
put it (/root/.prefect/), or named by PREFECT__USER_CONFIG_PATH, decides the server for the
bootstrap and the agent, although the agent runs as a non-root user (and as any uid)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from testbed.docker import HOST_SOCKET, socket_gid, wait_for_log
from testbed.flow_runs import AGENT_READY

# agents on the image's default health port (127.0.0.1:8080): one at a time (tests/conftest.py)
pytestmark = [pytest.mark.docker, pytest.mark.xdist_group("port-8080")]

# Which process is the agent, and what its environment says: the agent is tini's grandchild.
AGENT_ENVIRONMENT = """
import glob
for path in glob.glob("/proc/[0-9]*/cmdline"):
    try:
        argv = open(path, "rb").read().split(b"\\0")
        environ = open(path[: -len("cmdline")] + "environ", "rb").read().split(b"\\0")
    except OSError:
        continue
    if b"start" in argv and b"agent" in b" ".join(argv):
        print("\\n".join(item.decode() for item in environ))
"""


def config_toml(tmp_path: Path, api_url: str) -> Path:
    """lume-services' own shape: [server] host and port, the endpoint built from them."""
    parts = urlsplit(api_url)
    path = tmp_path / "config.toml"
    path.write_text(
        "[server]\n"
        f'host = "http://{parts.hostname}"\n'
        f'port = "{parts.port}"\n'
        f'host_port = "{parts.port}"\n'
        'endpoint = "${server.host}:${server.port}"\n'
    )
    path.chmod(0o644)
    return path


def start(containers, image: str, volumes: dict, **run_options):
    environment = {"BOOTSTRAP_TENANT": "LUME", "BOOTSTRAP_PROJECTS": "lume"}
    return containers.run(
        image,
        environment={**environment, **run_options.pop("environment", {})},
        volumes={HOST_SOCKET: {"bind": HOST_SOCKET, "mode": "rw"}, **volumes},
        group_add=[socket_gid()],
        **run_options,
    )


@pytest.mark.parametrize("user", [None, "123456:0"], ids=["image-user", "any-uid"])
def test_a_config_file_mounted_for_root_names_the_server(
    containers, prod_image: str, prefect_api, tmp_path: Path, user
) -> None:
    config = config_toml(tmp_path, prefect_api.url)
    mount = {str(config): {"bind": "/root/.prefect/config.toml", "mode": "ro"}}
    agent = start(containers, prod_image, mount, **({"user": user} if user else {}))
    wait_for_log(agent, AGENT_READY, timeout=90)
    (registered,) = prefect_api.agents()
    assert registered["type"] == "DockerAgent"
    assert [tenant["slug"] for tenant in prefect_api.tenants()] == ["lume"]
    logs = agent.logs().decode()
    assert "localhost:4200" not in logs
    # The agent reads the file too (its other sections apply there), named explicitly.
    environ = agent.exec_run(["python", "-c", AGENT_ENVIRONMENT]).output.decode().splitlines()
    assert "PREFECT__USER_CONFIG_PATH=/root/.prefect/config.toml" in environ


def test_prefect_user_config_path_names_the_file(
    containers, prod_image: str, prefect_api, tmp_path: Path
) -> None:
    config = config_toml(tmp_path, prefect_api.url)
    agent = start(
        containers,
        prod_image,
        {str(config): {"bind": "/etc/lume/prefect.toml", "mode": "ro"}},
        environment={"PREFECT__USER_CONFIG_PATH": "/etc/lume/prefect.toml"},
    )
    wait_for_log(agent, AGENT_READY, timeout=90)
    assert len(prefect_api.agents()) == 1


def test_a_named_config_file_that_is_not_there_is_a_settings_error(
    containers, prod_image: str
) -> None:
    finished = containers.run_to_end(
        prod_image, environment={"PREFECT__USER_CONFIG_PATH": "/etc/lume/prefect.toml"}
    )
    assert finished.exit_code == 2, finished.output
    assert "PREFECT__USER_CONFIG_PATH=/etc/lume/prefect.toml: no such file" in finished.output
