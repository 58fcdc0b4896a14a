"""The seeds' own command, ``docker run -v /var/run/docker.sock:/var/run/docker.sock -it
IMAGE`` (LUME-services' scheduling notes), as written: no --user, no --group-add, no
capabilities. It runs under a pseudo-terminal (``-it`` needs one), with what this host
and the double need on top: ``--network host`` (this host's only network), the server's URL,
flow runs on the host network and mounted flows, a free health port and a name to stop it
by. It registers a dev and a prod agent, each runs a flow, and ``docker stop`` ends it."""

from __future__ import annotations

import shlex
import subprocess
import uuid

import pytest

from testbed.agent_stand import FLOWS, FLOWS_IN_CONTAINER, DockerAgentStand
from testbed.flow_runs import wait_final
from testbed.net import free_port

pytestmark = [pytest.mark.docker, pytest.mark.e2e]

SEEDS = ["-v", "/var/run/docker.sock:/var/run/docker.sock", "-it"]


@pytest.mark.parametrize("target", ["dev", "prod"])
def test_the_seeds_command_starts_an_agent_that_runs_a_flow(
    target, request, prefect_api, containers, docker_cli
) -> None:
    image = request.getfixturevalue(f"{target}_image")
    name = f"pa-test-seeds-{uuid.uuid4().hex[:8]}"
    here = ["--network", "host", "--name", name]
    settings = {
        "PREFECT__CLOUD__API": prefect_api.url,
        "BOOTSTRAP_DOCKER_NETWORKS": "host",
        "BOOTSTRAP_DOCKER_VOLUMES": f"{FLOWS}:{FLOWS_IN_CONTAINER}:ro",
        "BOOTSTRAP_AGENT_ADDRESS": f"http://127.0.0.1:{free_port()}",
    }
    env = [item for key, value in settings.items() for item in ("-e", f"{key}={value}")]
    command = shlex.join([docker_cli, "run", *here, *SEEDS, *env, image])
    terminal = subprocess.Popen(  # script(1): the pseudo-terminal -it asks for
        ["script", "--quiet", "--return", "--command", command, "/dev/null"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        prefect_api.wait_until(prefect_api.agents, 120, what="the agent registered")
        stand = DockerAgentStand(prefect_api, containers, image)
        stand.tenant_id = prefect_api.tenants()[0]["id"]  # "default", the bootstrap's
        prefect_api.create_project("lume", stand.tenant_id)
        run = stand.run(stand.register("squares.py", labels=[]), parameters={"n": 2})
        assert wait_final(prefect_api, [run], timeout=180) == {run: "Success"}
        stopped = subprocess.run([docker_cli, "stop", name], capture_output=True, timeout=90)
        assert stopped.returncode == 0, stopped.stderr
        output = terminal.communicate(timeout=60)[0].decode(errors="replace")
        assert terminal.returncode == 0, output[-3000:]  # docker stop: a clean exit
    finally:
        terminal.kill()
        subprocess.run([docker_cli, "rm", "--force", name], capture_output=True)
    assert "Waiting for flow runs..." in output
    assert "Traceback" not in output
    assert "ERROR" not in output, output[-3000:]
