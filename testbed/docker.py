"""The real Docker engine's side of the tests and benchmarks: the images' names, the
engine's socket, containers that are removed afterwards, waits on their logs and health,
the base the Makefile builds on, and a proxied socket of any owner and mode."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import docker
from docker.models.containers import Container

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "prefect-agent-docker" / "Dockerfile"
IMAGE = os.environ.get("IMAGE", "prefect-agent")
DEV_IMAGE = f"{IMAGE}:{os.environ.get('DEV_TAG', 'dev')}"
PROD_IMAGE = f"{IMAGE}:{os.environ.get('PROD_TAG', 'prod')}"
TEST_LABEL = "org.lume-services.prefect-agent.test"


HOST_SOCKET = "/var/run/docker.sock"


def socket_gid(path: str = HOST_SOCKET) -> str:
    """The group of the engine's socket on this host: what ``--group-add`` gives the image's
    runtime user (the image runs as uid 1000) so that it can use the socket."""
    return str(os.stat(path).st_gid)


def pinned_base_image() -> str:
    """The Dockerfile's default BASE_IMAGE (the pinned conda distribution)."""
    match = re.search(r"^ARG BASE_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert match, "the Dockerfile must pin a default BASE_IMAGE"
    return match.group(1)


def find_docker_cli() -> str:
    if os.environ.get("DOCKER"):
        return os.environ["DOCKER"]
    return subprocess.run(
        [str(ROOT / "scripts" / "docker-cli.sh")], capture_output=True, text=True, check=True
    ).stdout.strip()


class Containers:
    """Start containers on the host network; remove them all afterwards."""

    def __init__(self, client: docker.DockerClient):
        self.client = client
        self.started: List[Container] = []

    def run(
        self,
        image: str,
        command: Optional[Union[str, Sequence[str]]] = None,
        *,
        environment: Optional[Dict[str, str]] = None,
        volumes: Optional[Dict[str, Dict[str, str]]] = None,
        **kwargs,
    ) -> Container:
        """Start a detached container (not auto-removed, so its logs stay readable), on the
        host network, this host's only one: an agent's flow runs too, unless the test says
        otherwise (BOOTSTRAP_DOCKER_NETWORKS; the agent checks they reach its server)."""
        kwargs.setdefault("network_mode", "host")
        environment = {"BOOTSTRAP_DOCKER_NETWORKS": "host", **(environment or {})}
        kwargs.setdefault("name", f"pa-test-{uuid.uuid4().hex[:10]}")
        labels = {TEST_LABEL: "1", **kwargs.pop("labels", {})}
        try:
            container = self.client.containers.run(
                image,
                command,
                detach=True,
                environment=environment,
                volumes=volumes or {},
                labels=labels,
                **kwargs,
            )
        except docker.errors.APIError as exc:
            # Created, then refused to start: not left behind. (A 409 is a name already
            # taken: that container is not this call's to remove.)
            if exc.status_code != 409:
                with contextlib.suppress(docker.errors.APIError):
                    self.client.containers.get(kwargs["name"]).remove(force=True, v=True)
            raise
        self.started.append(container)
        return container

    def run_to_end(self, image: str, command=None, timeout: float = 300, **kwargs) -> Finished:
        """Run a container to completion; return its exit code and output."""
        container = self.run(image, command, **kwargs)
        try:
            result = container.wait(timeout=timeout)
        except Exception as exc:  # requests' ReadTimeout: the container hangs
            logs = container.logs().decode(errors="replace")
            raise AssertionError(f"container did not end within {timeout} s:\n{logs}") from exc
        return Finished(
            result["StatusCode"],
            container.logs(stdout=True, stderr=False).decode(errors="replace"),
            container.logs(stdout=False, stderr=True).decode(errors="replace"),
        )

    def remove_all(self) -> None:
        for container in self.started:
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True, v=True)


class Finished:
    def __init__(self, exit_code: int, stdout: str, stderr: str):
        self.exit_code = exit_code
        self.stdout = stdout
        self.stderr = stderr

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def __repr__(self) -> str:
        return f"Finished(exit_code={self.exit_code}, output=...{self.output[-2000:]!r})"


def wait_for_log(
    container: Container, pattern: str, timeout: float = 60, interval: float = 0.2
) -> re.Match:
    """Wait until the container's output matches ``pattern``; fail with the logs if not."""
    regex = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        logs = container.logs().decode(errors="replace")
        match = regex.search(logs)
        if match:
            return match
        container.reload()
        if container.status == "exited" or time.monotonic() > deadline:
            raise AssertionError(
                f"{pattern!r} not in the logs of {container.name} "
                f"(status {container.status}):\n{logs[-4000:]}"
            )
        time.sleep(interval)


def wait_for_health(container: Container, timeout: float = 120) -> str:
    """Wait for Docker's health status to leave 'starting'; return it, and for "healthy"
    only once the check probed the agent (its last output ends ": ok ..."), so that a check
    that found no agent to look at is not taken for a healthy one."""
    deadline = time.monotonic() + timeout
    status = "starting"
    while time.monotonic() < deadline:
        container.reload()
        health = container.attrs["State"].get("Health", {})
        status = health.get("Status", "none")
        log = health.get("Log") or []
        probed = bool(log) and ": ok" in (log[-1].get("Output") or "")
        if (status == "healthy" and probed) or status not in ("starting", "healthy"):
            return status
        if container.status == "exited":
            return status
        time.sleep(0.5)
    return status if status != "healthy" else "healthy, but no probe of the agent seen"


def resolve_base_image(docker_cli: str) -> str:
    """The base the Makefile builds on here (scripts/base-image.sh with the same defaults):
    the pinned one, or the offline Debian base."""
    env = {**os.environ, "DOCKER": docker_cli}
    env.setdefault("BASE_IMAGE", pinned_base_image())
    return subprocess.run(
        [str(ROOT / "scripts" / "base-image.sh")],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout.strip()


class SocketProxy:
    """A Unix socket forwarding to the engine's socket, with an owner and mode of our choice.

    Lets tests mount "the Docker socket" with a group id no image knows, or root-only,
    without touching the host's real socket.
    """

    def __init__(self, path: Path, target: str = "/var/run/docker.sock"):
        self.path = path
        self.target = target
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(path))
        self._listener.listen(64)
        self._threads: List[threading.Thread] = []
        self._connections: List[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def chown(self, uid: int, gid: int, mode: int) -> SocketProxy:
        os.chown(self.path, uid, gid)
        os.chmod(self.path, mode)
        return self

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.target)
            self._connections += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                thread = threading.Thread(target=self._pump, args=(source, sink), daemon=True)
                thread.start()

    @staticmethod
    def _pump(source, sink) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Stop listening and cut every open connection, as an engine that goes away does
        (the socket file stays: connecting to it is then refused)."""
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() blocked in _accept
        self._listener.close()
        for connection in self._connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
