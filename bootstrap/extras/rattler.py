"""EXTRA_CONDA_PACKAGES without a conda CLI: py-rattler in a worker process
(:mod:`bootstrap.extras.rattler_worker`) solves, reports the plan, and installs only when
told to, so an interruption can stop it like any other installer."""

from __future__ import annotations

import contextlib
import json
import subprocess
import tempfile
import time
from importlib.util import find_spec
from pathlib import Path
from typing import IO, List, Mapping, Optional

from bootstrap.extras import proc
from bootstrap.extras.conda_request import CondaRequest
from bootstrap.extras.environment import TargetEnv
from bootstrap.extras.plan import Changes, InstallPlan, installer_message
from bootstrap.extras.variables import CONDA_VAR
from bootstrap.util.errors import ExtrasError


def rattler_available() -> bool:
    return find_spec("rattler") is not None


def conda_channels(request: CondaRequest, environ: Mapping[str, str]) -> List[str]:
    """Channels for an installer without conda's configuration (py-rattler): the request's,
    then CONDA_CHANNELS (comma-separated), else conda-forge; ``chan::pkg`` specs add chan."""
    channels = list(request.channels)
    for spec in request.specs:
        if "::" in spec:
            channels.append(spec.split("::", 1)[0])
    if not request.override_channels or not channels:
        configured = [item.strip() for item in environ.get("CONDA_CHANNELS", "").split(",")]
        channels.extend(item for item in configured if item)
    if not channels:
        channels.append("conda-forge")
    return list(dict.fromkeys(channels))


class Rattler:
    """py-rattler in a worker process: solve -> plan on stdout -> "apply" on stdin."""

    kind = "conda"
    name = "rattler"

    def __init__(self, prefix: Path, env: Mapping[str, str], python: str):
        self.prefix = prefix
        self.env = env
        self.python = python
        self.core = None  # bootstrap.extras.core.Core: for the refusal's wording
        self.process: Optional[subprocess.Popen] = None
        self.stderr: Optional[IO[bytes]] = None

    @property
    def identity(self) -> str:
        from importlib.metadata import version

        return f"rattler:{version('py-rattler')}"

    def describe(self) -> str:
        from importlib.metadata import version

        return f"py-rattler {version('py-rattler')}"

    def protect(self, core) -> None:
        """What is installed is pinned in the solve already (see rattler_worker): a spec that
        would change the core cannot be solved. Kept to name the core in the refusal."""
        self.core = core

    def _send(self, message: str) -> None:
        if self.process is None or self.process.stdin is None:
            raise ExtrasError(f"{CONDA_VAR}: the rattler worker is not running")
        self.process.stdin.write(message + "\n")
        self.process.stdin.flush()

    def _receive(self) -> dict:
        if self.process is None or self.process.stdout is None:
            raise ExtrasError(f"{CONDA_VAR}: the rattler worker is not running")
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            stderr = self._stderr()
            raise ExtrasError(
                f"{CONDA_VAR}: the rattler worker ended unexpectedly "
                f"(exit {self.process.returncode}):\n{installer_message(stderr)}"
            )
        return json.loads(line)

    def _stderr(self) -> str:
        if self.stderr is None:
            return ""
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def plan(self, request: CondaRequest, target: TargetEnv) -> InstallPlan:
        started = time.monotonic()
        cache = Path(self.env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        pkgs_dirs = [item for item in self.env.get("CONDA_PKGS_DIRS", "").split(",") if item]
        message = {
            "prefix": str(self.prefix),
            "python": str(target.python),
            "python_version": target.version,
            "pip_distributions": {
                name: version for name, (version, _) in target.distributions.items()
            },
            "channels": conda_channels(request, self.env),
            "channel_alias": self.env.get("CONDA_CHANNEL_ALIAS") or "https://conda.anaconda.org/",
            "specs": list(request.specs),
            "repodata_cache": str(cache / "rattler" / "cache"),
            "package_cache": pkgs_dirs[0] if pkgs_dirs else str(cache / "rattler" / "pkgs"),
        }
        # a file, not a pipe: a chatty worker can never fill it and block
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        self.process = proc.popen(
            [self.python, "-m", "bootstrap.extras.rattler_worker"],
            self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
        )
        try:
            self._send(json.dumps(message))
            answer = self._receive()
        except BaseException:
            self.close(force=True)
            raise
        if not answer.get("ok"):
            self.close()
            error = answer.get("error", "").strip()
            conflicts = self.core.mentioned_in(error) if self.core is not None else []
            if conflicts:
                from bootstrap.extras.core import CoreChangeError

                raise CoreChangeError(CONDA_VAR, request.describe(), conflicts, error)
            raise ExtrasError(
                f"{CONDA_VAR}: rattler cannot install {request.describe()} from "
                f"{', '.join(message['channels'])}:\n{error}"
            )
        changes = Changes(install=[tuple(item) for item in answer["install"]])
        return InstallPlan(request, changes, [], time.monotonic() - started)

    def apply(self, plan: InstallPlan) -> float:
        started = time.monotonic()
        try:
            self._send("apply")
            answer = self._receive()
        except BaseException:
            self.close(force=True)
            raise
        if not answer.get("ok"):
            # A Rust panic's own message is on the worker's stderr (py-rattler's error then
            # says only "unknown error"): read before the worker and its file go.
            stderr = self._stderr().strip()
            self.close()
            said = f"\n{installer_message(stderr)}" if stderr else ""
            raise ExtrasError(
                f"{CONDA_VAR}: rattler failed to install {plan.request.describe()}:\n"
                f"{answer.get('error', '').strip()}{said}"
            )
        self.close()
        return time.monotonic() - started

    def close(self, force: bool = False) -> None:
        """End the worker: closing its input makes one that was not told to apply exit
        without touching the environment; ``force`` (errors, interruptions) stops it at once,
        even in the middle of an install."""
        if self.process is None:
            return
        process, self.process = self.process, None
        if force:
            proc.stop_group(process)
        if process.stdin:
            with contextlib.suppress(OSError):
                process.stdin.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.stop_group(process)
        except BaseException:
            proc.stop_group(process)
            raise
        if process.stdout:
            process.stdout.close()
        if self.stderr is not None:
            self.stderr.close()
            self.stderr = None
