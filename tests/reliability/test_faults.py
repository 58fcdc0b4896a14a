"""Faults around a running image: the server, the Docker engine, a flow-run image.

Each test injects one fault into real parts (the engine through a socket proxy, the API
double stopped or answering garbage) and checks the promise the README makes about it.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from prefect.run_configs import DockerRun

from testbed.agent_stand import FLOWS, FLOWS_IN_CONTAINER
from testbed.docker import HOST_SOCKET, SocketProxy, socket_gid, wait_for_log
from testbed.flow_runs import AGENT_READY, assert_ran_exactly_once, state_names, wait_final
from testbed.net import free_port
from tests.helpers.containers import assert_no_traceback
from tests.helpers.figures import figure

pytestmark = [pytest.mark.reliability, pytest.mark.docker]

CREATE_RUN = "mutation($input: create_flow_run_input!) { create_flow_run(input: $input) { id } }"
SOCKET_DIR_IN_CONTAINER = "/var/run/engine"
UNKNOWN_GID = 4242
OUTAGE = 20  # seconds the server is down while the agent polls


def agent_environment(api, **extra: str) -> dict:
    return {
        "PREFECT__CLOUD__API": api.url,
        "BOOTSTRAP_TENANT": "LUME",
        "BOOTSTRAP_PROJECTS": "lume",
        "BOOTSTRAP_AGENT_ADDRESS": f"http://:{free_port()}",
        **extra,
    }


def healthcheck(container) -> tuple:
    """Run the image's HEALTHCHECK command now: (exit code, "ok" or the reason)."""
    code, output = container.exec_run(["prefect-agent-bootstrap", "healthcheck"])
    reason = output.decode().strip()
    return code, "ok" if code == 0 and ": ok" in reason else reason


def wait_for_healthcheck(container, healthy: bool, timeout: float = 30) -> tuple:
    """The health check once it says ``healthy`` (the agent checks its engine every 5 s)."""
    deadline = time.monotonic() + timeout
    while True:
        code, reason = healthcheck(container)
        if (code == 0) == healthy or time.monotonic() > deadline:
            return code, reason
        time.sleep(0.5)


def create_run_while_down(api, flow_id: str) -> str:
    """Create a run in the double's database while its HTTP front is down (as the
    scheduler, or another API replica, would)."""
    payload = api.execute(CREATE_RUN, {"input": {"flow_id": flow_id}})
    assert not payload.get("errors"), payload
    return payload["data"]["create_flow_run"]["id"]


# The server ------------------------------------------------------------------------------


def test_server_down_at_start_the_bootstrap_waits_then_goes_on(
    containers, dev_image, prefect_api
) -> None:
    prefect_api.stop()
    container = containers.run(
        dev_image,
        environment=agent_environment(prefect_api, BOOTSTRAP_WAIT_TIMEOUT="90"),
        volumes={HOST_SOCKET: {"bind": HOST_SOCKET, "mode": "rw"}},
        group_add=[socket_gid()],
    )
    wait_for_log(container, r"not ready \(attempt 3: ", timeout=60)
    prefect_api.start()
    back = time.monotonic()
    wait_for_log(container, AGENT_READY, timeout=90)
    output = container.logs().decode()
    assert "Connection refused" in output  # each failed attempt says why
    assert len(prefect_api.agents()) == 1
    assert_no_traceback(output)
    answered = wait_for_log(container, r"answered after ([0-9.]+) s").group(1)
    figure("server down at start: bootstrap waited", float(answered))
    figure("server back -> agent polling", time.monotonic() - back)


def test_server_never_up_exits_3_naming_the_url(containers, dev_image, prefect_api) -> None:
    prefect_api.stop()
    started = time.monotonic()
    result = containers.run_to_end(
        dev_image, environment=agent_environment(prefect_api, BOOTSTRAP_WAIT_TIMEOUT="4")
    )
    assert result.exit_code == 3, result
    assert f"the Prefect Server at {prefect_api.url} did not answer within 4 s" in result.output
    assert "last error: [Errno 111] Connection refused" in result.output
    assert_no_traceback(result.output)
    assert time.monotonic() - started < 30


def test_server_goes_away_while_polling_and_comes_back(
    docker_agent_stand, container_creations
) -> None:
    """Runs created during an outage each run exactly once after it, without a restart."""
    stand = docker_agent_stand
    agent = stand.start_agent()
    api = stand.api
    flow_id = stand.register("squares.py")
    before = stand.run(flow_id, parameters={"n": 1})
    api.wait_for_flow_run_state(before, timeout=120)

    api.stop()
    during = [create_run_while_down(api, flow_id) for _ in range(3)]
    time.sleep(OUTAGE)  # the agent's poll retries (prefect's client: 0, 2, 4, 8, 16, 32 s)
    api.start()
    back = time.monotonic()
    api.wait_until(
        lambda: all(api.flow_run(run)["state"] != "Scheduled" for run in during),
        timeout=90,
        what="the runs created during the outage to be submitted",
    )
    figure(f"server down {OUTAGE} s, back -> queued runs submitted", time.monotonic() - back)
    states = wait_final(api, during, timeout=180)
    assert set(states.values()) == {"Success"}, (states, stand.agent_logs()[-3000:])
    for run in [before, *during]:
        assert_ran_exactly_once(api, run)
    assert container_creations.of([before, *during]) == dict.fromkeys([before, *during], 1)

    agent.reload()
    assert agent.status == "running"
    assert agent.attrs["RestartCount"] == 0
    logs = stand.agent_logs()
    assert logs.count("Waiting for flow runs...") == 1  # the same agent process throughout


def test_garbage_drops_and_500s_while_polling_are_survived(docker_agent_stand) -> None:
    stand = docker_agent_stand
    agent = stand.start_agent()
    api = stand.api
    flow_id = stand.register("squares.py")
    polls = len(api.requests_for("get_runs_in_queue"))
    api.garbage_next(2)
    api.inject_faults(2, "drop")
    api.fail_next(2)
    api.inject_faults(1, "status", status=200, body=b'{"data": {"get_runs_in_queue": 7}}')
    api.wait_until(lambda: api.pending_faults == 0, timeout=60, what="the faults to be served")
    api.wait_until(
        lambda: len(api.requests_for("get_runs_in_queue")) > polls + 6,
        timeout=60,
        what="the agent to keep polling",
    )
    run = stand.run(flow_id, parameters={"n": 1})
    assert api.wait_for_flow_run_state(run, timeout=120)["state"] == "Success"
    assert_ran_exactly_once(api, run)
    agent.reload()
    assert agent.status == "running"
    assert stand.agent_logs().count("Waiting for flow runs...") == 1


# The Docker engine ----------------------------------------------------------------------


def test_no_docker_socket_exits_5_after_tenant_and_projects(
    containers, dev_image, prefect_api
) -> None:
    result = containers.run_to_end(dev_image, environment=agent_environment(prefect_api))
    assert result.exit_code == 5, result
    assert "no Docker socket at /var/run/docker.sock" in result.output
    assert "docker run -v /var/run/docker.sock:/var/run/docker.sock" in result.output
    assert_no_traceback(result.output)
    assert len(prefect_api.projects()) == 1
    assert prefect_api.agents() == []


def test_a_directory_where_the_socket_should_be_exits_5(
    containers, dev_image, prefect_api, tmp_path: Path
) -> None:
    """``-v /var/run/docker.sock:...`` on a host without that socket mounts a directory."""
    empty = tmp_path / "docker.sock"
    empty.mkdir()
    result = containers.run_to_end(
        dev_image,
        environment=agent_environment(prefect_api),
        volumes={str(empty): {"bind": "/var/run/docker.sock", "mode": "rw"}},
    )
    assert result.exit_code == 5, result
    assert "/var/run/docker.sock is not a socket (a directory)" in result.output
    assert_no_traceback(result.output)


def test_an_engine_that_does_not_answer_exits_5(
    containers, dev_image, prefect_api, tmp_path: Path
) -> None:
    socket_dir = tmp_path / "engine"
    socket_dir.mkdir(mode=0o755)
    proxy = SocketProxy(socket_dir / "docker.sock").chown(0, UNKNOWN_GID, 0o660)
    proxy.close()  # the socket file stays, nothing listens: an engine that is down
    result = containers.run_to_end(
        dev_image,
        environment=agent_environment(prefect_api),
        volumes={str(proxy.path): {"bind": "/var/run/docker.sock", "mode": "rw"}},
        group_add=[str(UNKNOWN_GID)],
    )
    assert result.exit_code == 5, result
    assert "the Docker engine at unix:///var/run/docker.sock does not answer" in result.output
    assert_no_traceback(result.output)


def test_the_engine_goes_away_under_a_running_agent_and_comes_back(
    docker_agent_stand, tmp_path: Path
) -> None:
    """The agent outlives an engine restart: a run taken meanwhile fails with the reason,
    the next heartbeat logs the failure, and once the engine answers again at the same
    socket path the agent deploys runs without being restarted."""
    socket_dir = tmp_path / "engine"
    socket_dir.mkdir()
    socket_dir.chmod(0o755)
    socket_path = socket_dir / "docker.sock"
    proxies = [SocketProxy(socket_path).chown(0, UNKNOWN_GID, 0o660)]
    stand = docker_agent_stand
    try:
        agent = stand.start_agent(
            volumes={str(socket_dir): {"bind": SOCKET_DIR_IN_CONTAINER, "mode": "rw"}},
            group_add=[str(UNKNOWN_GID)],
            DOCKER_HOST=f"unix://{SOCKET_DIR_IN_CONTAINER}/docker.sock",
        )
        ready = time.monotonic()
        api = stand.api
        flow_id = stand.register("squares.py")

        assert healthcheck(agent) == (0, "ok")
        proxies[0].close()  # the engine goes away: connections cut, new ones refused
        code, reason = wait_for_healthcheck(agent, healthy=False)
        assert code == 1, reason
        assert "the Docker engine has not answered for" in reason
        during = stand.run(flow_id, parameters={"n": 1})
        run = api.wait_for_flow_run_state(during, timeout=120)
        assert run["state"] == "Failed"
        assert "Connection" in run["state_message"], run["state_message"]
        assert state_names(api, during).count("Submitted") == 1

        # prefect's DockerAgent pings the engine every 60 s (its heartbeat)
        wait_for_log(agent, r"WARNING - [\w-]+ \| Failed heartbeat: ", timeout=90)
        figure("engine gone -> failed heartbeat logged", time.monotonic() - ready)
        socket_path.unlink()
        proxies.append(SocketProxy(socket_path).chown(0, UNKNOWN_GID, 0o660))  # it is back
        back = time.monotonic()
        after = stand.run(flow_id, parameters={"n": 1})
        assert api.wait_for_flow_run_state(after, timeout=120)["state"] == "Success"
        figure("engine back -> next run succeeded", time.monotonic() - back)
        assert wait_for_healthcheck(agent, healthy=True) == (0, "ok")
        assert_ran_exactly_once(api, after)
        agent.reload()
        assert agent.status == "running"
        assert agent.attrs["RestartCount"] == 0
        assert stand.agent_logs().count("Waiting for flow runs...") == 1
    finally:
        for proxy in proxies:
            proxy.close()


def test_a_socket_file_replaced_on_the_host_is_not_seen_through_a_file_mount(
    docker_agent_stand, tmp_path: Path
) -> None:
    """Why the README says to mount the socket's directory when the engine recreates its
    socket: a bind-mounted file stays the old socket. The health check says so."""
    socket_dir = tmp_path / "engine"
    socket_dir.mkdir()
    socket_dir.chmod(0o755)
    socket_path = socket_dir / "docker.sock"
    proxies = [SocketProxy(socket_path).chown(0, UNKNOWN_GID, 0o660)]
    try:
        agent = docker_agent_stand.start_agent(
            volumes={str(socket_path): {"bind": "/var/run/docker.sock", "mode": "rw"}},
            group_add=[str(UNKNOWN_GID)],
        )
        assert healthcheck(agent) == (0, "ok")
        proxies[0].close()
        socket_path.unlink()
        proxies.append(SocketProxy(socket_path).chown(0, UNKNOWN_GID, 0o660))
        code, reason = wait_for_healthcheck(agent, healthy=False)
        assert code == 1, reason
        assert "Connection refused" in reason
    finally:
        for proxy in proxies:
            proxy.close()


# prefect's own DockerAgent, as the CLI builds it, with the heartbeat it exposes for testing
# shortened from 60 s to 1 s: what six failed heartbeats really do, in seconds, not minutes.
SHORT_HEARTBEAT_AGENT = """
import sys
from prefect.agent.docker import DockerAgent

agent = DockerAgent(
    labels=["lume"], base_url=sys.argv[1], volumes=[sys.argv[2]], networks=["host"],
    no_pull=True, show_flow_logs=True,
)
agent.heartbeat_period = 1.0
agent.start()
"""


def test_after_six_failed_heartbeats_prefect_says_shutting_down_but_polls_on(
    docker_agent_stand, containers, dev_image, tmp_path: Path
) -> None:
    """prefect 1.2.4 raises SystemExit in its heartbeat *thread*: the thread ends, the agent
    does not. It keeps polling, and deploys again once the engine is back."""
    socket_dir = tmp_path / "engine"
    socket_dir.mkdir()
    socket_dir.chmod(0o755)
    socket_path = socket_dir / "docker.sock"
    proxies = [SocketProxy(socket_path).chown(0, UNKNOWN_GID, 0o660)]
    stand = docker_agent_stand
    api = stand.api
    stand.tenant_id = api.create_tenant("LUME", "lume")
    api.create_project("lume", stand.tenant_id)
    flow_id = stand.register("squares.py")
    engine = f"unix://{SOCKET_DIR_IN_CONTAINER}/docker.sock"
    try:
        agent = containers.run(
            dev_image,
            ["python", "-c", SHORT_HEARTBEAT_AGENT, engine, f"{FLOWS}:{FLOWS_IN_CONTAINER}:ro"],
            environment={
                "PREFECT__CLOUD__API": api.url,
                "PREFECT__CLOUD__TENANT_ID": stand.tenant_id,
                "DOCKER_HOST": engine,
            },
            volumes={str(socket_dir): {"bind": SOCKET_DIR_IN_CONTAINER, "mode": "rw"}},
            group_add=[str(UNKNOWN_GID)],
        )
        wait_for_log(agent, AGENT_READY, timeout=90)
        proxies[0].close()
        wait_for_log(agent, "Cannot reconnect to Docker daemon. Agent is shutting down.", 60)
        polls = len(api.requests_for("get_runs_in_queue"))
        api.wait_until(
            lambda: len(api.requests_for("get_runs_in_queue")) >= polls + 2,
            timeout=40,
            what="polls after the agent said it was shutting down",
        )
        agent.reload()
        assert agent.status == "running"

        socket_path.unlink()
        proxies.append(SocketProxy(socket_path).chown(0, UNKNOWN_GID, 0o660))
        run = stand.run(flow_id, parameters={"n": 1})
        assert api.wait_for_flow_run_state(run, timeout=120)["state"] == "Success"
        assert_ran_exactly_once(api, run)
        logs = agent.logs().decode()
        assert logs.count("Failed heartbeat") == 6
        assert "Reconnected to Docker daemon" not in logs  # the heartbeat thread is gone
    finally:
        for proxy in proxies:
            proxy.close()


# A flow-run container that cannot start --------------------------------------------------


def test_a_missing_flow_run_image_fails_that_run_and_the_agent_goes_on(
    docker_agent_stand, container_creations
) -> None:
    stand = docker_agent_stand
    stand.start_agent()
    api = stand.api
    flow_id = stand.register("squares.py")
    missing = stand.run(
        flow_id, run_config=DockerRun(image="prefect-agent:no-such-tag", labels=["lume"])
    )
    run = api.wait_for_flow_run_state(missing, timeout=60)
    assert run["state"] == "Failed"
    # the stand's agent never pulls (BOOTSTRAP_DOCKER_NO_PULL: the policy Never)
    gone = "Image prefect-agent:no-such-tag is not on the agent's Docker engine"
    assert gone in run["state_message"]
    logs = [log["message"] for log in api.logs(flow_run_id=missing)]
    assert any(gone in message for message in logs), logs

    following = stand.run(flow_id, parameters={"n": 1})
    assert api.wait_for_flow_run_state(following, timeout=120)["state"] == "Success"
    assert_ran_exactly_once(api, following)
    assert container_creations.of([missing, following]) == {missing: 0, following: 1}
    assert f"Deployment of {missing} aborted!" in stand.agent_logs()
