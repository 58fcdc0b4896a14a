"""A real container registry on 127.0.0.1: Debian's ``docker-registry`` (the CNCF
distribution registry, 2.8), started for a module with its storage in a temporary directory and,
on request, htpasswd authentication (what a private registry asks of ``docker login``).

The engine treats 127.0.0.0/8 as an insecure registry by default, so plain HTTP works
without any engine configuration.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path
from typing import Optional

import docker

from testbed.net import free_port

REGISTRY_BINARY = "docker-registry"


def registry_binary() -> Optional[str]:
    return shutil.which(REGISTRY_BINARY)


class LocalRegistry:
    """``docker-registry serve`` on 127.0.0.1:<free port>; stop() ends it."""

    def __init__(self, directory: Path, user: Optional[str] = None, password: str = "") -> None:
        self.directory = directory
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.user = user
        self.password = password
        config = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": False}},
            "storage": {"filesystem": {"rootdirectory": str(directory / "storage")}},
            "http": {"addr": self.host},
        }
        if user:
            # bcrypt, the only hash the registry's htpasswd backend takes (glibc's libxcrypt;
            # the crypt module is deprecated, not gone, on the Python 3.11 tests run on)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                import crypt
            hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))  # noqa: S324
            (directory / "htpasswd").write_text(f"{user}:{hashed}\n")
            config["auth"] = {"htpasswd": {"realm": "test", "path": str(directory / "htpasswd")}}
        (directory / "config.yml").write_text(json.dumps(config))  # JSON is YAML
        self.log_path = directory / "registry.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [registry_binary() or REGISTRY_BINARY, "serve", str(directory / "config.yml")],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {self.log_path.read_text()}")
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1)
                return
            except urllib.error.HTTPError:
                return  # 401 with auth on: it answers
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"docker-registry did not answer on {self.host}")

    def docker_config(self, path: Path) -> Path:
        """A Docker config.json holding this registry's credentials (docker login's)."""
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        path.write_text(json.dumps({"auths": {self.host: {"auth": token}}}))
        return path

    def push(self, client: docker.DockerClient, source: str, repository: str) -> str:
        """Push the local image ``source`` as ``<registry>/<repository>`` and untag it, so
        that the engine must pull the reference again; returns the reference."""
        reference = f"{self.host}/{repository}"
        client.images.get(source).tag(reference)
        auth = {"username": self.user, "password": self.password} if self.user else None
        for line in client.images.push(reference, stream=True, decode=True, auth_config=auth):
            if "error" in line:
                raise RuntimeError(f"push of {reference} failed: {line['error']}")
        client.images.remove(reference)
        return reference

    def requests_for(self, repository: str, kind: str = "manifests") -> int:
        """How many requests for ``repository``'s manifests by tag (the engine asks once per
        pull, HEAD or GET) the registry answered with 200, from its access log."""
        text = self.log_path.read_text(errors="replace")
        served = re.compile(
            rf'"(HEAD|GET) /v2/{re.escape(repository)}/{kind}/(?!sha256:)[^ ]+ HTTP/[0-9.]+" 200 '
        )
        return sum(1 for line in text.splitlines() if served.search(line))

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log.close()
