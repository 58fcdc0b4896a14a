"""deploy/compose: this image as the agent service of a LUME-services stack.

The file is resolved with docker-compose itself (Debian's 1.29), its settings checked with the
bootstrap's own loader, and its agent service run for real against the API double. The one
change for the run: this host has no bridge networks, so the service joins the host network
instead of lume-services' ``service-net`` (a derived copy of the file, everything else as
committed). lume-services' other services (Prefect Server, MySQL, MongoDB) are not here.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Dict
from urllib.parse import urlsplit

import pytest
import yaml

from testbed.docker import wait_for_health
from testbed.flow_runs import AGENT_READY
from testbed.lume_services import (
    FLOW_WHEEL,
    LUME_LABELS,
    docker_run,
    flow_package_wheel,
    register_lume_flow,
    run_and_return,
)
from testbed.net import free_port

COMPOSE_DIR = Path(__file__).resolve().parents[2] / "deploy" / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
EXAMPLE_ENV = COMPOSE_DIR / "lume.env.example"
DATA_ALIAS = "/lume-services/data"
# What lume-services' own compose file gives every flow run (--env on its agent's command).
LUME_FLOW_RUN_SETTINGS = [
    "LUME_BACKEND",
    "LUME_MOUNTED_FILESYSTEM__IDENTIFIER",
    "LUME_MOUNTED_FILESYSTEM__MOUNT_PATH",
    "LUME_MOUNTED_FILESYSTEM__MOUNT_ALIAS",
    "LUME_MOUNTED_FILESYSTEM__MOUNT_TYPE",
    "LUME_MODEL_DB__HOST",
    "LUME_MODEL_DB__PORT",
    "LUME_MODEL_DB__USER",
    "LUME_MODEL_DB__PASSWORD",
    "LUME_MODEL_DB__DATABASE",
    "LUME_RESULTS_DB__USERNAME",
    "LUME_RESULTS_DB__PASSWORD",
    "LUME_RESULTS_DB__PORT",
    "LUME_RESULTS_DB__HOST",
    "LUME_RESULTS_DB__DATABASE",
    "LUME_PREFECT__SERVER__HOST",
    "LUME_PREFECT__SERVER__HOST_PORT",
    "LUME_PREFECT__HOME_DIR",
    "LUME_PREFECT__DEBUG",
    "LUME_PREFECT__BACKEND",
]
PASSWORDS = {"model": "model-db-pw-4c1d", "results": "results-db-pw-9e2a"}


def env_file(path: Path, **settings: str) -> Path:
    """The example env file with ``settings`` replacing its values."""
    lines = []
    for line in EXAMPLE_ENV.read_text().splitlines():
        name = line.split("=", 1)[0]
        lines.append(f"{name}={settings.pop(name)}" if name in settings else line)
    lines += [f"{name}={value}" for name, value in settings.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def resolved(project) -> dict:
    return yaml.safe_load(project.run("config").stdout)


def test_the_example_settings_resolve_as_they_are(compose) -> None:
    """lume-services' usual invocation: nothing to compute first (no socket group id)."""
    agent = resolved(compose([COMPOSE_FILE], EXAMPLE_ENV))["services"]["agent"]
    assert agent["volumes"][1]["target"] == "/var/run/docker.sock"


def test_the_agent_service_carries_lume_services_flow_run_settings(
    compose, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = compose([COMPOSE_FILE], env_file(tmp_path / "lume.env"))
    agent = resolved(project)["services"]["agent"]
    assert agent["image"] == "prefect-agent:prod"
    assert agent["restart"] == "always"
    assert "group_add" not in agent  # the entrypoint adds the socket's group, then drops root
    assert "user" not in agent
    assert agent["cap_drop"] == ["ALL"]
    assert sorted(agent["cap_add"]) == ["SETGID", "SETUID"]  # what dropping root takes
    assert agent["security_opt"] == ["no-new-privileges:true"]
    assert "test" not in agent["healthcheck"]  # the image's own check, probed every 10 s
    targets = {volume["target"]: volume for volume in agent["volumes"]}
    assert targets["/root/.prefect/config.toml"]["source"] == str(COMPOSE_DIR / "config.toml")
    assert targets["/root/.prefect/config.toml"]["read_only"] is True
    assert targets["/var/run/docker.sock"]["source"] == "/var/run/docker.sock"
    assert targets[DATA_ALIAS]["source"] == "/srv/lume-services/data"

    environment: Dict[str, str] = agent["environment"]
    assert environment["BOOTSTRAP_AGENT_LABELS"] == ",".join(LUME_LABELS)
    assert environment["BOOTSTRAP_DOCKER_NETWORKS"] == "service-net"
    assert environment["BOOTSTRAP_DOCKER_VOLUMES"] == f"/srv/lume-services/data:{DATA_ALIAS}"
    flow_run_names = [
        line.split("=", 1)[0] for line in environment["BOOTSTRAP_AGENT_ENV"].splitlines()
    ] + [
        item.split("=", 1)[0].strip()
        for item in environment["BOOTSTRAP_AGENT_ENV_FILES"].split(",")
    ]
    assert sorted(flow_run_names) == sorted(LUME_FLOW_RUN_SETTINGS)
    assert not any("PASSWORD=" in line for line in environment["BOOTSTRAP_AGENT_ENV"].split())

    # Every BOOTSTRAP_* the file sets is a setting the image knows, with a valid value.
    from bootstrap.settings import load_settings

    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.agent_labels == LUME_LABELS
    assert settings.tenant_slug == "default"
    assert [project.name for project in settings.projects] == ["default"]


@pytest.fixture
def stack_dir(tmp_path: Path, prefect_api) -> Path:
    """What an operator prepares: config.toml naming the server, the password files, the
    data directory (holding the flow package's wheel)."""
    parts = urlsplit(prefect_api.url)
    (tmp_path / "config.toml").write_text(
        f'[server]\nhost = "http://{parts.hostname}"\nport = "{parts.port}"\n'
        'endpoint = "${server.host}:${server.port}"\n'
    )
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name, password in PASSWORDS.items():
        (secrets / name).write_text(password + "\n")
        (secrets / name).chmod(0o644)  # readable by the agent's uid
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o777)
    flow_package_wheel(data)
    return tmp_path


def host_network_copy(target: Path) -> Path:
    """The committed file with the host network in place of lume-services' network."""
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    service = document["services"]["agent"]
    del service["networks"]
    service["network_mode"] = "host"
    del document["networks"]
    target.write_text(yaml.safe_dump(document))
    return target


@pytest.mark.docker
@pytest.mark.e2e
def test_the_agent_service_runs_a_lume_flow_against_the_server_in_config_toml(
    compose, stack_dir: Path, prod_image: str, prefect_api, docker_client
) -> None:
    port = free_port()
    settings = env_file(
        stack_dir / "lume.env",
        PREFECT_AGENT_IMAGE=prod_image,
        LUME_SERVICES_NETWORK="host",
        PREFECT_CONFIG_TOML=str(stack_dir / "config.toml"),
        LUME_PREFECT__AGENT__PORT=str(port),
        BOOTSTRAP_PROJECTS="default,test",
        LUME_MOUNTED_FILESYSTEM__MOUNT_PATH=str(stack_dir / "data"),
        LUME_MODEL_DB__PASSWORD_FILE=str(stack_dir / "secrets" / "model"),
        LUME_RESULTS_DB__PASSWORD_FILE=str(stack_dir / "secrets" / "results"),
    )
    project = compose([host_network_copy(stack_dir / "docker-compose.yml")], settings)
    project.run("up", "--detach")
    container = docker_client.containers.get(project.container_id("agent"))
    deadline = time.monotonic() + 120
    while AGENT_READY.replace("\\", "") not in container.logs().decode():
        container.reload()
        assert container.status == "running", container.logs().decode()[-3000:]
        assert time.monotonic() < deadline, container.logs().decode()[-3000:]
        time.sleep(0.5)

    # The bootstrap found the server in config.toml, created tenant and projects, and the
    # agent registered with lume-services' label.
    (tenant,) = prefect_api.tenants()
    assert tenant["slug"] == "default"
    assert sorted(p["name"] for p in prefect_api.projects(tenant["id"])) == ["default", "test"]
    (agent,) = prefect_api.agents()
    assert agent["labels"] == LUME_LABELS
    assert wait_for_health(container, timeout=60) == "healthy"

    flow_id = register_lume_flow(prefect_api.url, tenant["id"], "test")
    run_config = docker_run(
        prod_image, "test", env={"EXTRA_PIP_PACKAGES": f"{DATA_ALIAS}/{FLOW_WHEEL}"}
    )
    parameters = {"text": "hey you", "filename": "compose.txt"}
    results = run_and_return(prefect_api.url, tenant["id"], flow_id, run_config, parameters)
    flow_run_settings = results["lume_settings-1"]
    assert sorted(flow_run_settings) == sorted(LUME_FLOW_RUN_SETTINGS)
    for name, password in [("LUME_MODEL_DB__PASSWORD", PASSWORDS["model"]),
                           ("LUME_RESULTS_DB__PASSWORD", PASSWORDS["results"])]:  # fmt: skip
        # from the secret files, intact (the flow returns digests, not the values)
        assert flow_run_settings[name] == hashlib.sha256(password.encode()).hexdigest()
    assert flow_run_settings["LUME_MOUNTED_FILESYSTEM__MOUNT_ALIAS"] == DATA_ALIAS
    assert (stack_dir / "data" / "compose.txt").read_text() == "hey you"

    # No password in the agent's docker inspect or its output.
    inspected = str(docker_client.api.inspect_container(container.id))
    output = container.logs().decode()
    for password in PASSWORDS.values():
        assert password not in inspected
        assert password not in output

    # docker-compose stop: SIGINT, the agent's clean exit.
    project.run("stop", "--timeout", "60")
    container.reload()
    assert container.attrs["State"]["ExitCode"] == 0, output[-3000:]
