"""``docker stop`` at every stage: installing extras, waiting for the server, polling, with a
flow run in flight. The container must end on the stop signal itself (exit 130 or 0, never
137: killed at the timeout), quickly, with no process left behind and nothing half done."""

from __future__ import annotations

import time
from typing import Iterator

import pytest

from testbed.docker import wait_for_log
from testbed.flow_runs import assert_ran_exactly_once
from testbed.net import free_port
from testbed.packages import PackageServer, build_repo
from tests.helpers.containers import assert_no_traceback, changes, in_env, processes
from tests.helpers.figures import figure

pytestmark = [pytest.mark.reliability, pytest.mark.docker]

KILL_TIMEOUT = 30  # docker stop's SIGKILL comes after this; every stop must be well before
SLOW_WHEEL = "slowpkg-0.1.0-py3-none-any.whl"
IMPORT_EXTRAS = ["python", "-c", "import slowpkg, tinypkg; print('IMPORTED', tinypkg.VERSION)"]


@pytest.fixture(scope="module")
def package_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PackageServer]:
    with PackageServer(build_repo(tmp_path_factory.mktemp("repo"))) as server:
        yield server


def stop(container) -> float:
    """``docker stop`` (STOPSIGNAL SIGINT, SIGKILL after KILL_TIMEOUT); return its duration."""
    started = time.monotonic()
    container.stop(timeout=KILL_TIMEOUT)
    elapsed = time.monotonic() - started
    container.reload()
    state = container.attrs["State"]
    assert state["Status"] == "exited"
    assert not state["OOMKilled"]
    assert elapsed < 20, f"docker stop took {elapsed:.1f} s (exit {state['ExitCode']})"
    return elapsed


def test_stop_while_extras_install_then_start_the_same_container_again(
    containers, prod_image, package_server
) -> None:
    package_server.delay[SLOW_WHEEL] = 60  # the install step hangs downloading it
    environment = {"EXTRA_PIP_PACKAGES": f"--index-url {package_server.url}/simple tinypkg slowpkg"}
    container = containers.run(prod_image, IMPORT_EXTRAS, environment=environment)
    try:
        deadline = time.monotonic() + 60
        while not any(path.endswith(SLOW_WHEEL) for path in package_server.requests):
            assert time.monotonic() < deadline, container.logs().decode()
            time.sleep(0.2)
        before = processes(container)
        installers = [p for p in before if "uv pip install" in p["cmd"]]
        assert installers, before
        assert {p["uid"] for p in installers} == {"1000"}

        elapsed = stop(container)
        figure("docker stop while installing extras", elapsed)
        assert container.attrs["State"]["ExitCode"] == 130  # the bootstrap's own exit
        output = container.logs().decode()
        assert "stopped by SIGINT while installing extra packages" in output
        assert "the environment was rolled back" in output
        assert "IMPORTED" not in output
        assert in_env(changes(container)) == []  # nothing half installed
        assert_no_traceback(output)
    finally:
        package_server.delay.clear()

    # The same container (its own writable layer) again: a clean install, no leftovers.
    container.start()
    assert container.wait(timeout=120)["StatusCode"] == 0, container.logs().decode()
    output = container.logs().decode()
    assert output.count("IMPORTED 0.1.0") == 1
    assert output.count("Installing extra packages") == 2
    assert "did not finish: rolling it back" not in output  # the stop had cleaned up
    assert "Installed pip packages with uv" in output


def test_stop_while_waiting_for_the_server(containers, dev_image) -> None:
    container = containers.run(
        dev_image,
        environment={
            "PREFECT__CLOUD__API": f"http://127.0.0.1:{free_port()}",  # nothing listens
            "BOOTSTRAP_WAIT_TIMEOUT": "300",
        },
    )
    wait_for_log(container, r"not ready \(attempt 2", timeout=60)
    figure("docker stop while waiting for the server", stop(container))
    assert container.attrs["State"]["ExitCode"] == 130
    assert_no_traceback(container.logs().decode())


def test_stop_while_polling_with_a_run_in_flight(docker_agent_stand) -> None:
    """The agent (tini's only child: the bootstrap exec'd it) stops on its own; the flow run
    in its sibling container is not touched and finishes."""
    stand = docker_agent_stand
    agent = stand.start_agent()
    api = stand.api
    listing = processes(agent)
    (init,) = [p for p in listing if p["init"]]
    assert init["cmd"].startswith("/usr/local/libexec/prefect-agent/tini ")
    children = [p for p in listing if not p["init"]]
    assert children, listing
    assert all("-m bootstrap.agent agent docker start" in p["cmd"] for p in children), listing

    run = stand.run(stand.register("squares.py"), parameters={"n": 2})
    api.wait_for_flow_run_state(run, ("Running", "Success"), timeout=120)
    figure("docker stop while polling (a run in flight)", stop(agent))
    assert agent.attrs["State"]["ExitCode"] == 0
    assert "Keyboard interrupt received! Shutting down..." in stand.agent_logs()
    assert api.wait_for_flow_run_state(run, timeout=120)["state"] == "Success"
    assert_ran_exactly_once(api, run)
