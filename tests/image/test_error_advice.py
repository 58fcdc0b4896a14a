"""Every start-up failure's advice is true for the image it comes from: each failure is
caused for real, the command its message suggests is read from that message, and running
that command with the docker CLI gets the agent polling (or the step done).

A message that changes its advice breaks the reading here; advice that stops working
breaks the run."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
import uuid
from pathlib import Path
from typing import Iterator, List, Tuple

import docker
import pytest

from testbed.flow_runs import AGENT_READY
from testbed.net import free_port
from testbed.packages import PackageServer, build_repo

pytestmark = pytest.mark.docker

SOCKET = "/var/run/docker.sock"
UNKNOWN_GID = "4242"


class Runs:
    """``docker run --detach`` of the CLI; each container removed at the end."""

    def __init__(self, cli: str, client: docker.DockerClient) -> None:
        self.cli, self.client, self.names = cli, client, []

    def outcome(self, argv: List[str], timeout: float = 120) -> Tuple[object, str]:
        """("ready", logs) once the agent polls, or (exit code, logs) if it ends first."""
        name = f"pa-test-advice-{uuid.uuid4().hex[:8]}"
        self.names.append(name)
        command = [self.cli, "run", "--detach", "--name", name, "--network", "host", *argv]
        started = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert started.returncode == 0, started.stderr
        container = self.client.containers.get(name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            container.reload()
            logs = container.logs().decode(errors="replace")
            if re.search(AGENT_READY, logs):
                return "ready", logs
            if container.status == "exited":
                return container.attrs["State"]["ExitCode"], logs
            time.sleep(0.3)
        raise AssertionError(f"neither polling nor ended in {timeout} s:\n{logs[-2000:]}")

    def remove(self) -> None:
        for name in self.names:
            subprocess.run([self.cli, "rm", "--force", name], capture_output=True)


@pytest.fixture
def runs(docker_cli, docker_client):
    made = Runs(docker_cli, docker_client)
    yield made
    made.remove()


class ApiEnv:
    """The server's URL and flow runs on the host network; a fresh health port each time."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __iter__(self):
        address = f"BOOTSTRAP_AGENT_ADDRESS=http://127.0.0.1:{free_port()}"
        env = [f"PREFECT__CLOUD__API={self.url}", "BOOTSTRAP_DOCKER_NETWORKS=host", address]
        return iter([item for value in env for item in ("-e", value)])


@pytest.fixture
def api_env(prefect_api) -> ApiEnv:
    return ApiEnv(prefect_api.url)


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PackageServer]:
    with PackageServer(build_repo(tmp_path_factory.mktemp("repo"))) as server:
        yield server


def suggested(pattern: str, logs: str) -> List[str]:
    """The docker run options a message suggests (``pattern``'s group 1), as argv."""
    found = re.search(pattern, logs)
    assert found, f"no advice matching {pattern!r} in:\n{logs[-2000:]}"
    return [part for part in shlex.split(found.group(1)) if part != "..."]


def test_no_socket_mounted(runs, api_env, prod_image) -> None:
    code, logs = runs.outcome([*api_env, prod_image])
    assert code == 5, logs
    advice = suggested(r"Mount it: docker run (-v \S+) \.\.\.", logs)
    assert advice == ["-v", f"{SOCKET}:{SOCKET}"]
    assert runs.outcome([*advice, *api_env, prod_image])[0] == "ready"


def test_a_socket_the_user_cannot_use(runs, api_env, prod_image, docker_socket_proxy) -> None:
    socket = docker_socket_proxy(uid=0, gid=int(UNKNOWN_GID), mode=0o660)
    mount = ["-v", f"{socket}:{SOCKET}"]
    code, logs = runs.outcome([*mount, "--user", "1000", *api_env, prod_image])
    assert code == 5, logs
    # advice 1: start it as root, the image's default (no --user)
    assert "Start the container as root (the image's default user" in logs
    assert runs.outcome([*mount, *api_env, prod_image])[0] == "ready"
    # advice 2: add the socket's group yourself
    advice = suggested(r"add the group yourself: docker run (--group-add \d+) \.\.\.", logs)
    assert advice == ["--group-add", UNKNOWN_GID]
    assert runs.outcome([*mount, "--user", "1000", *advice, *api_env, prod_image])[0] == "ready"


def test_root_without_the_capabilities_to_drop_root(runs, api_env, prod_image) -> None:
    mount = ["-v", f"{SOCKET}:{SOCKET}"]
    code, logs = runs.outcome([*mount, "--cap-drop", "ALL", *api_env, prod_image])
    assert code == 5, logs
    assert "Traceback" not in logs
    as_user = suggested(r"the socket's group: docker run (--user \S+ --group-add \S+) \.\.\.", logs)
    assert as_user[:3] == ["--user", "prefect", "--group-add"]
    argv = [*mount, "--cap-drop", "ALL", *as_user, *api_env, prod_image]
    assert runs.outcome(argv)[0] == "ready"
    caps = suggested(r"that needs: (--cap-add SETUID --cap-add SETGID)", logs)
    argv = [*mount, "--cap-drop", "ALL", *caps, *api_env, prod_image]
    assert runs.outcome(argv)[0] == "ready"


def test_a_read_only_root_without_the_overlay_mount(runs, api_env, prod_image, index) -> None:
    base = ["-v", f"{SOCKET}:{SOCKET}", "--read-only", "--tmpfs", "/tmp"]
    extras = ["-e", f"EXTRA_PIP_PACKAGES=--index-url {index.url}/simple tinypkg"]
    code, logs = runs.outcome([*base, *extras, *api_env, prod_image])
    assert code == 6, logs
    advice = suggested(r"a writable directory there \(docker run (--tmpfs \S+),", logs)
    assert advice == ["--tmpfs", "/var/lib/prefect-agent:exec"]
    assert runs.outcome([*base, *advice, *extras, *api_env, prod_image])[0] == "ready"


def test_flow_runs_that_cannot_reach_the_api(runs, api_env, prod_image) -> None:
    base = ["-v", f"{SOCKET}:{SOCKET}", *api_env]  # flow runs on the host network, and then:
    none = ["-e", "BOOTSTRAP_DOCKER_NETWORKS=none"]
    code, logs = runs.outcome([*base, *none, prod_image])
    assert code == 5, logs
    assert "a network that reaches it (BOOTSTRAP_DOCKER_NETWORKS)" in logs
    assert runs.outcome([*base, prod_image])[0] == "ready"  # the host network reaches it
    warn = suggested(r"\); (BOOTSTRAP_DOCKER_FLOW_RUN_CHECK=\s*warn) starts the agent", logs)
    assert runs.outcome([*base, *none, "-e", "".join(warn), prod_image])[0] == "ready"


def test_a_manifest_directory_the_user_cannot_write(docker_cli, prod_image, tmp_path: Path) -> None:
    manifest = ["kubernetes", "manifest", "--output-dir", "/out"]
    env = ["-e", "BOOTSTRAP_KUBERNETES_IMAGE=prefect-agent:prod",
           "-e", "PREFECT__CLOUD__API=http://prefect.example.org:4200/graphql"]  # fmt: skip

    def run(directory: Path, *options: str) -> subprocess.CompletedProcess:
        argv = [docker_cli, "run", "--rm", *options, "-v", f"{directory}:/out", *env]
        return subprocess.run(
            [*argv, prod_image, *manifest], capture_output=True, text=True, timeout=120
        )

    mine = tmp_path / "base"
    mine.mkdir(mode=0o755)  # root's here: the image's runtime user may not write there
    failed = run(mine)
    assert failed.returncode == 1, failed.stderr
    # advice 1, as root on the host: chown the directory to the uid named
    uid = suggested(r"as root on the host, chown (\d+) DIRECTORY first", failed.stderr)[0]
    os.chown(mine, int(uid), -1)
    done = run(mine)
    assert done.returncode == 0, done.stderr
    assert (mine / "kustomization.yaml").is_file()
    # advice 2, as another user (4242 here): run the container as that user
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, 4242, 4242)
    assert run(theirs).returncode == 1
    advice = suggested(r"as yourself: docker run (--user \"\$\(id -u\)\") ", failed.stderr)
    assert advice == ["--user", "$(id -u)"]
    done = run(theirs, "--user", "4242")  # what $(id -u) is for that user
    assert done.returncode == 0, done.stderr
    assert (theirs / "kustomization.yaml").is_file()
