"""EXTRA_CONDA_PACKAGES: plan and apply with mamba, micromamba, conda, or py-rattler.

- A conda CLI (conda bases such as miniforge): ``<tool> install --dry-run --json`` plans,
  then ``<tool> install --yes`` applies. Channels come from the request (``-c``) and the
  tool's own configuration (``.condarc``, ``CONDA_CHANNELS``, ...).
- py-rattler (bases without a conda CLI, like the offline Debian base): a worker process
  (:mod:`bootstrap.extras.rattler_worker`) solves, reports the plan, and installs only when
  told to, so an interruption can stop it like any other installer.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO, Dict, List, Mapping, Optional

from bootstrap.errors import ExtrasError
from bootstrap.extras import proc
from bootstrap.extras.environment import TargetEnv
from bootstrap.extras.plan import (
    CONDA_INSTALLER_VAR,
    CONDA_INSTALLERS,
    CONDA_VAR,
    Changes,
    CondaRequest,
    InstallPlan,
    UnreadablePlan,
    conda_channels,
    conda_cli_argv,
    installer_message,
    parse_conda_dry_run,
)
from bootstrap.log import logger

CondaPlan = InstallPlan[CondaRequest]


class CondaCli:
    """mamba / micromamba / conda, whichever the base image has."""

    def __init__(self, tool: str, path: str, prefix: Path, env: Mapping[str, str]):
        self.tool = tool
        self.path = path
        self.prefix = prefix
        self.env = env

    @property
    def name(self) -> str:
        return self.tool

    @property
    def identity(self) -> str:
        return f"{self.tool}:{proc.executable_identity(self.path)}"

    def plan(self, request: CondaRequest, target: TargetEnv) -> CondaPlan:
        argv = conda_cli_argv(self.path, str(self.prefix), request, dry_run=True)
        result = proc.run(argv, self.env)
        failure: Optional[str] = None
        try:
            changes, unlinked = parse_conda_dry_run(result.stdout)
        except UnreadablePlan:  # no JSON: the tool's own words
            failure = installer_message(result.output)
        except ExtrasError as exc:  # a JSON error document
            failure = str(exc)
        else:
            if result.returncode != 0:
                failure = installer_message(result.output)
        if failure is not None:
            raise ExtrasError(
                f"{CONDA_VAR}: {self.tool} cannot install {request.describe()}:\n{failure}"
            )
        backups: List[Path] = []
        for dist in unlinked:
            meta = self.prefix / "conda-meta" / f"{dist}.json"
            try:
                files = json.loads(meta.read_text()).get("files", [])
            except (OSError, ValueError):
                files = []
            backups.extend(self.prefix / item for item in files)
        for name, _ in changes.install:  # a conda package replacing a pip distribution
            backups.extend(target.dist_files(name))
        return CondaPlan(request, changes, backups, result.seconds)

    def apply(self, plan: CondaPlan) -> float:
        argv = conda_cli_argv(self.path, str(self.prefix), plan.request, dry_run=False)
        result = proc.run(argv, self.env)
        if result.returncode != 0:
            raise ExtrasError(
                f"{CONDA_VAR}: {self.tool} failed to install {plan.request.describe()}:\n"
                f"{installer_message(result.output)}"
            )
        return result.seconds

    def close(self, force: bool = False) -> None:
        """Nothing to end: each conda CLI run is over when plan/apply returns."""


class Rattler:
    """py-rattler in a worker process: solve -> plan on stdout -> "apply" on stdin."""

    name = "rattler"

    def __init__(self, prefix: Path, env: Mapping[str, str], python: str):
        self.prefix = prefix
        self.env = env
        self.python = python
        self.process: Optional[subprocess.Popen] = None
        self.stderr: Optional[IO[bytes]] = None

    @property
    def identity(self) -> str:
        from importlib.metadata import version

        return f"rattler:{version('py-rattler')}"

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
            stderr = ""
            if self.stderr is not None:
                self.stderr.seek(0)
                stderr = self.stderr.read().decode(errors="replace")
            raise ExtrasError(
                f"{CONDA_VAR}: the rattler worker ended unexpectedly "
                f"(exit {self.process.returncode}):\n{installer_message(stderr)}"
            )
        return json.loads(line)

    def plan(self, request: CondaRequest, target: TargetEnv) -> CondaPlan:
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
            raise ExtrasError(
                f"{CONDA_VAR}: rattler cannot install {request.describe()} from "
                f"{', '.join(message['channels'])}:\n{answer.get('error', '').strip()}"
            )
        changes = Changes(install=[tuple(item) for item in answer["install"]])
        return CondaPlan(request, changes, [], time.monotonic() - started)

    def apply(self, plan: CondaPlan) -> float:
        started = time.monotonic()
        try:
            self._send("apply")
            answer = self._receive()
        except BaseException:
            self.close(force=True)
            raise
        self.close()
        if not answer.get("ok"):
            raise ExtrasError(
                f"{CONDA_VAR}: rattler failed to install {plan.request.describe()}:\n"
                f"{answer.get('error', '').strip()}"
            )
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


def choose_conda_installer(
    environ: Mapping[str, str], prefix: Path, env: Dict[str, str], python: str
):
    """EXTRA_CONDA_INSTALLER (auto by default): mamba, micromamba, conda, else py-rattler."""
    wanted = (environ.get(CONDA_INSTALLER_VAR) or "auto").strip().lower()
    if wanted not in ("auto", *CONDA_INSTALLERS):
        raise ExtrasError(
            f"{CONDA_INSTALLER_VAR}={wanted!r}: use auto or one of {', '.join(CONDA_INSTALLERS)}"
        )
    candidates = CONDA_INSTALLERS if wanted == "auto" else (wanted,)
    path_value = env.get("PATH")
    for tool in candidates:
        if tool == "rattler":
            try:
                import rattler  # noqa: F401
            except ImportError:
                continue
            return Rattler(prefix, env, python)
        found = shutil.which(tool, path=path_value)
        if found:
            return CondaCli(tool, found, prefix, env)
    raise ExtrasError(
        f"{CONDA_VAR} is set but no conda installer is available "
        f"({CONDA_INSTALLER_VAR}={wanted}; looked for {', '.join(candidates)})"
    )


def describe_installer(installer) -> str:
    if isinstance(installer, Rattler):
        from importlib.metadata import version

        return f"py-rattler {version('py-rattler')}"
    return f"{installer.tool} ({installer.path})"


def log_plan(plan: CondaPlan, installer) -> None:
    logger.info(
        "Conda plan (%s, %.2f s): %s", installer.name, plan.seconds, plan.changes.describe()
    )
