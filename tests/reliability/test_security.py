"""Security of a running container: who runs, where secrets go, what the health port shows.

Build-time secrets (the proxy CA in layers and ``docker history``) and the absence of
compilers in ``prod`` are tests/image/test_image.py's; the Dockerfile is linted by
``make lint`` (hadolint).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Dict, Iterator

import pytest
import requests

from testbed.docker import wait_for_log
from testbed.flow_runs import AGENT_READY, assert_ran_exactly_once
from testbed.net import free_port
from testbed.packages import PackageServer, build_repo, make_tls
from tests.helpers.containers import assert_no_traceback, processes

pytestmark = [pytest.mark.reliability, pytest.mark.docker]

# Fake secrets, distinctive enough to find anywhere they leak to.
API_KEY = "pa-test-api-key-7f3c9e51"
DB_PASSWORD = "pa-test-db-pass-41d2a0"  # noqa: S105
TOKEN = "pa-test-token-88aa13f7"  # noqa: S105
INDEX_PASSWORD = "pa-test-index-pass-93b1"  # noqa: S105
PROC_STATUS = """
import json, os
found = {}
for pid in filter(str.isdigit, os.listdir("/proc")):
    if int(pid) == os.getpid():
        continue
    try:
        status = dict(
            line.split(":", 1) for line in open(f"/proc/{pid}/status").read().splitlines()
        )
        cmdline = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\\0", b" ").decode()
    except OSError:
        continue
    found[pid] = {key: status[key].split() for key in ("Uid", "Gid", "CapEff", "CapPrm")}
    found[pid]["PPid"] = status["PPid"].strip()
    found[pid]["NoNewPrivs"] = status.get("NoNewPrivs", "").strip()
    found[pid]["cmdline"] = cmdline
print(json.dumps(found))
"""


@pytest.fixture(scope="module")
def package_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PackageServer]:
    with PackageServer(build_repo(tmp_path_factory.mktemp("repo"))) as server:
        yield server


def in_container_processes(container) -> Dict[str, dict]:
    """/proc of every process in the container (PIDs of its namespace), read from inside."""
    code, output = container.exec_run(["python", "-c", PROC_STATUS])
    assert code == 0, output
    return json.loads(output)


def test_the_agent_runs_as_uid_1000_without_capabilities(docker_agent_stand) -> None:
    agent = docker_agent_stand.start_agent()
    (main,) = [p for p in in_container_processes(agent).values() if p["PPid"] == "1"]
    assert "-m bootstrap.agent agent docker start" in main["cmdline"]
    assert main["Uid"] == ["1000"] * 4  # real, effective, saved, file system
    assert main["Gid"] == ["1000"] * 4
    assert main["CapEff"] == main["CapPrm"] == ["0000000000000000"]
    # docker top agrees: nothing in the container runs as root, not even tini (PID 1)
    listing = processes(agent)
    assert {p["uid"] for p in listing} == {"1000"}, listing


def test_no_secret_in_argv_logs_or_the_servers_logs(
    docker_agent_stand, package_server, tmp_path: Path
) -> None:
    """API key, secret-looking flow-run variables, an index password and a CA, with DEBUG
    logging, through start-up, extras, the agent and a flow run."""
    ca, _, _ = make_tls(tmp_path / "tls")
    ca_text = ca.read_text()
    ca_lines = [line for line in ca_text.splitlines() if line and "-----" not in line]
    ca_marker = ca_lines[len(ca_lines) // 2]
    index = package_server.url.replace("http://", f"http://lume:{INDEX_PASSWORD}@")
    stand = docker_agent_stand
    agent = stand.start_agent(
        PREFECT__CLOUD__API_KEY=API_KEY,
        BOOTSTRAP_AGENT_ENV=f"DB_PASSWORD={DB_PASSWORD},MY_TOKEN={TOKEN},PLAIN=plain-value",
        BOOTSTRAP_LOG_LEVEL="DEBUG",
        EXTRA_PIP_PACKAGES=f"--index-url {index}/simple tinypkg",
        EXTRA_CA_CERT=ca_text,
    )
    api = stand.api
    run = stand.run(stand.register("squares.py"), parameters={"n": 1})
    assert api.wait_for_flow_run_state(run, timeout=120)["state"] == "Success"
    assert_ran_exactly_once(api, run)
    secrets = [API_KEY, DB_PASSWORD, TOKEN, INDEX_PASSWORD, ca_marker]

    logs = stand.agent_logs()
    assert "Installed pip packages with uv" in logs  # the index (and its password) was used
    assert "DEBUG - " in logs
    assert "Starting the agent" in logs
    assert '"DB_PASSWORD": "********"' in logs  # the agent's command line, as logged
    assert "plain-value" in logs  # only the secret-looking values are masked
    assert [secret for secret in secrets if secret in logs] == []
    argvs = [p["cmd"] for p in processes(agent)]
    argvs += [p["cmdline"] for p in in_container_processes(agent).values()]
    assert [secret for secret in secrets if any(secret in argv for argv in argvs)] == []
    server_side = json.dumps([log["message"] for log in api.logs()])
    assert [secret for secret in secrets if secret in server_side] == []
    # the key was used, as a bearer token (prefect also hands it to flow-run containers)
    assert any(r.header("Authorization") == f"Bearer {API_KEY}" for r in api.requests)


def start_local_agent(containers, image: str, prefect_api, address: str):
    """A local agent in the image, its health server on ``address``, ready."""
    container = containers.run(
        image,
        environment={
            "PREFECT__CLOUD__API": prefect_api.url,
            "BOOTSTRAP_AGENT_TYPE": "local",
            "BOOTSTRAP_AGENT_ADDRESS": address,
        },
    )
    wait_for_log(container, AGENT_READY, timeout=90)
    return container


def test_the_health_port_serves_health_and_nothing_else(containers, prod_image, prefect_api):
    port = free_port()
    container = start_local_agent(containers, prod_image, prefect_api, f"http://:{port}")
    base = f"http://127.0.0.1:{port}"
    health = requests.get(f"{base}/api/health", timeout=5)
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "reason": "polling"}  # no versions, ids, URLs
    assert health.headers["Content-Type"].startswith("application/json")
    deadline = time.monotonic() + 30  # ready once its first poll has succeeded
    while requests.get(f"{base}/api/ready", timeout=5).json()["status"] != "ok":
        assert time.monotonic() < deadline, "not ready after 30 s"
        time.sleep(0.2)
    for path in ("/", "/api", "/metrics", "/api/health/../../etc/passwd", "/debug", "/docs"):
        answer = requests.get(f"{base}{path}", timeout=5)
        assert answer.status_code == 404, path
        assert b"prefect" not in answer.content.lower(), path
    assert requests.post(f"{base}/api/health", data="{}", timeout=5).status_code == 405

    # /api/poke: no data; it wakes the agent to poll at once, at most once a second
    answer = requests.get(f"{base}/api/poke", timeout=5)
    assert (answer.status_code, answer.content) == (200, b"{}")
    assert_no_traceback(container.logs().decode())


def test_the_health_server_can_be_kept_on_loopback(containers, prod_image, prefect_api) -> None:
    """BOOTSTRAP_AGENT_ADDRESS=http://127.0.0.1:PORT: the image's health check still works."""
    port = free_port()
    container = start_local_agent(containers, prod_image, prefect_api, f"http://127.0.0.1:{port}")
    code, output = container.exec_run(["prefect-agent-bootstrap", "healthcheck"])
    assert code == 0, output
    assert f"http://127.0.0.1:{port}/api/health: ok" in output.decode()


def test_secrets_are_masked_from_the_first_line(containers, prod_image) -> None:
    """An extras value that makes the installer print the environment (``-r
    /proc/self/environ``) shows no secret: they are registered before the extras step."""
    result = containers.run_to_end(
        prod_image,
        ["true"],
        environment={
            "PREFECT__CLOUD__API_KEY": API_KEY,
            "PREFECT__CLOUD__API": f"https://bot:{INDEX_PASSWORD}@prefect.example.org/graphql",
            "BOOTSTRAP_AGENT_ENV": f"MY_PW={DB_PASSWORD},DSN=postgres://u:{TOKEN}@db/x",
            "EXTRA_PIP_PACKAGES": "-r /proc/self/environ",
        },
    )
    assert result.exit_code == 6, result
    assert "EXTRA_PIP_PACKAGES" in result.output
    for secret in (API_KEY, DB_PASSWORD, TOKEN, INDEX_PASSWORD):
        assert secret not in result.output
    assert "********" in result.output  # the installer did print them: masked
