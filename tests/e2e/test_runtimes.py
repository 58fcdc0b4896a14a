"""The runtimes operators use: an arbitrary uid in group 0 (OpenShift), a read-only root,
an HTTP proxy, a TLS-intercepting proxy's CA, secrets mounted as files.

Real parts: the engine, the images, the agent and its flow-run containers, a loopback proxy
recording what passes through it, a loopback TLS server signed by a private CA (openssl), a
PEP 503 index of wheels built by the tests. The Prefect Server is the API double.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Dict, Iterator

import docker
import pytest

from testbed.docker import HOST_SOCKET, Containers
from testbed.flow_runs import FLOW_RUN_LABEL
from testbed.packages import PackageServer, build_repo, make_tls
from tests.fixtures.proxy import RecordingProxy

pytestmark = [pytest.mark.docker, pytest.mark.e2e]

SOCKET = {HOST_SOCKET: {"bind": HOST_SOCKET, "mode": "rw"}}
# What a read-only root needs (docs/operations.md#read-only-root): /tmp (the run directory)
# and the extras overlay, which holds compiled modules too (exec).
READ_ONLY = {"read_only": True, "tmpfs": {"/tmp": "", "/var/lib/prefect-agent": "exec"}}
IMPORT_TINYPKG = ["python", "-c", "import tinypkg; print('IMPORTED', tinypkg.VERSION)"]


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PackageServer]:
    with PackageServer(build_repo(tmp_path_factory.mktemp("repo"))) as server:
        yield server


def run_to_success(stand, script: str, host_config=None, **parameters) -> str:
    flow_id = stand.register(script, host_config=host_config)
    run_id = stand.run(flow_id, parameters=parameters)
    run = stand.api.wait_for_flow_run_state(run_id, timeout=180)
    assert run["state"] == "Success", stand.agent_logs()
    return run_id


def inspect_flow_run(stand, docker_client, script: str, **parameters) -> dict:
    """Run the flow to success; its flow-run container's ``docker inspect``, taken while
    the container exists (the agent removes a successful run's container at once)."""
    run_id = stand.run(stand.register(script), parameters=parameters)
    filters = {"label": f"{FLOW_RUN_LABEL}={run_id}"}
    deadline = time.monotonic() + 120
    attrs = None
    while attrs is None and time.monotonic() < deadline:
        for found in docker_client.api.containers(all=True, filters=filters):
            with contextlib.suppress(docker.errors.NotFound):  # removed under us: next
                attrs = docker_client.api.inspect_container(found["Id"])
        time.sleep(0.05)
    assert attrs is not None, stand.agent_logs()
    run = stand.api.wait_for_flow_run_state(run_id, timeout=180)
    assert run["state"] == "Success", stand.agent_logs()
    return attrs


def env_of(attrs: dict) -> Dict[str, str]:
    return dict(item.split("=", 1) for item in attrs["Config"]["Env"])


# OpenShift: any uid, group 0 ----------------------------------------------------------------


def test_an_arbitrary_uid_in_group_0_runs_the_agent_and_its_flows(docker_agent_stand) -> None:
    stand = docker_agent_stand
    agent = stand.start_agent(run_options={"user": "4242:0"})
    assert agent.exec_run("id -u").output.decode().strip() == "4242"  # no passwd entry
    run_to_success(stand, "squares.py", n=3)


# Read-only root ------------------------------------------------------------------------------


def test_a_read_only_root_runs_the_agent_with_pip_extras_in_the_overlay(
    docker_agent_stand, containers: Containers, index: PackageServer
) -> None:
    stand = docker_agent_stand
    extras = {"EXTRA_PIP_PACKAGES": f"--index-url {index.url}/simple tinypkg"}
    stand.start_agent(run_options=READ_ONLY, **extras)
    logs = stand.agent_logs()
    assert "/var/lib/prefect-agent/extras" in logs, logs
    run_to_success(stand, "squares.py", n=2)
    # what the command sees: the extras, found first
    result = containers.run_to_end(stand.image, IMPORT_TINYPKG, environment=extras, **READ_ONLY)
    assert result.exit_code == 0, result
    assert "IMPORTED 0.1.0" in result.output


@pytest.mark.parametrize(
    ("tmpfs", "extras", "expected"),
    [
        ({"/tmp": ""}, {"pip": "tinypkg"}, "--tmpfs /var/lib/prefect-agent:exec"),
        (
            READ_ONLY["tmpfs"],
            {"conda": "tinyconda"},
            "EXTRA_CONDA_PACKAGES needs to write the runtime environment",
        ),
    ],
    ids=["no-overlay-mount", "conda"],
)
def test_a_read_only_root_refuses_what_it_cannot_install(
    containers: Containers, prod_image: str, index: PackageServer, tmpfs, extras, expected
) -> None:
    environment = {}
    if "pip" in extras:
        environment["EXTRA_PIP_PACKAGES"] = f"--index-url {index.url}/simple {extras['pip']}"
    if "conda" in extras:
        environment["EXTRA_CONDA_PACKAGES"] = f"-c {index.url}/channel {extras['conda']}"
    result = containers.run_to_end(
        prod_image, IMPORT_TINYPKG, environment=environment, read_only=True, tmpfs=tmpfs
    )
    assert result.exit_code == 6, result
    assert expected in result.output
    assert "a bug" not in result.output
    assert "Traceback" not in result.output


# Proxies and the extra CA --------------------------------------------------------------------


def test_proxy_variables_reach_flow_runs_and_the_server_stays_direct(
    docker_agent_stand, docker_client
) -> None:
    stand = docker_agent_stand
    url = "http://lume-data.example.test/models/v1"
    with RecordingProxy() as proxy:
        stand.start_agent(HTTP_PROXY=proxy.url, HTTPS_PROXY=proxy.url, NO_PROXY="corp.example")
        attrs = inspect_flow_run(
            stand, docker_client, "fetch.py", url=url, expected=f"proxied {url}"
        )
        # the flow's request went through the proxy; the agent's and the flow run's API
        # calls (to the double on 127.0.0.1) did not
        assert proxy.seen == [url]
    env = env_of(attrs)
    assert env["HTTP_PROXY"] == env["HTTPS_PROXY"] == proxy.url
    bypass = env["NO_PROXY"].split(",")
    assert {"corp.example", "127.0.0.1", "localhost"} <= set(bypass)
    assert env["no_proxy"] == env["NO_PROXY"]


def test_the_extra_ca_reaches_flow_runs_as_a_mounted_file(
    docker_agent_stand, docker_client, tmp_path: Path
) -> None:
    stand = docker_agent_stand
    ca, cert, key = make_tls(tmp_path / "tls")
    site = tmp_path / "site"
    site.mkdir()
    (site / "hello.txt").write_text("served over TLS")
    with PackageServer(site, tls=(cert, key)) as server:
        stand.start_agent(
            volumes={**SOCKET, str(ca): {"bind": "/certs/proxy-ca.pem", "mode": "ro"}},
            EXTRA_CA_CERT="/certs/proxy-ca.pem",
        )
        attrs = inspect_flow_run(
            stand,
            docker_client,
            "fetch.py",
            url=f"{server.url}/hello.txt",
            expected="served over TLS",
        )
    assert env_of(attrs)["EXTRA_CA_CERT"] == "/etc/prefect-agent/extra-ca.pem"
    assert "BEGIN CERTIFICATE" not in str(attrs["Config"]["Env"])
    (mount,) = [m for m in attrs["Mounts"] if m["Destination"] == "/etc/prefect-agent/extra-ca.pem"]
    assert (mount["Source"], mount["RW"]) == (str(ca), False)


# Secrets from files --------------------------------------------------------------------------


def test_secrets_from_files_reach_the_server_and_flow_runs_and_nothing_else(
    docker_agent_stand, docker_client, tmp_path: Path
) -> None:
    stand = docker_agent_stand
    api_key, password = "pa_key_from_a_file_5k2j", "db-password-from-a-file-9x7q"
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "api-key").write_text(api_key + "\n")
    (secrets / "db-password").write_text(password)
    for path in (secrets, *secrets.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    agent = stand.start_agent(
        volumes={**SOCKET, str(secrets): {"bind": "/run/secrets", "mode": "ro"}},
        PREFECT__CLOUD__API_KEY_FILE="/run/secrets/api-key",
        BOOTSTRAP_AGENT_ENV_FILES="LUME_DB_PASSWORD=/run/secrets/db-password",
        BOOTSTRAP_LOG_LEVEL="DEBUG",
    )
    sent = {request.header("Authorization") for request in stand.api.requests}
    assert f"Bearer {api_key}" in sent  # the key, read from its file, trailing newline gone
    run_to_success(stand, "environment.py", name="LUME_DB_PASSWORD", expected=password)

    agent.reload()
    shown = [str(agent.attrs["Config"]), str(agent.attrs["Args"]), stand.agent_logs()]
    shown += [" ".join(process) for process in agent.top()["Processes"]]  # every argv
    for text in shown:
        assert api_key not in text
        assert password not in text
