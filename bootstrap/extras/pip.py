"""EXTRA_PIP_PACKAGES: plan (``--dry-run``) and apply with uv, or ``python -m pip`` without it."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from pathlib import Path
from typing import Dict, List, Mapping

from bootstrap.errors import ExtrasError
from bootstrap.extras import proc
from bootstrap.extras.environment import TargetEnv, canonical_name
from bootstrap.extras.plan import (
    PIP_INSTALLER_VAR,
    PIP_INSTALLERS,
    PIP_VAR,
    InstallPlan,
    PipRequest,
    installer_message,
    parse_pip_dry_run,
    parse_uv_dry_run,
    pip_argv,
    pip_env_options,
    uv_argv,
)

PipPlan = InstallPlan[PipRequest]


class PipInstaller:
    def __init__(self, tool: str, path: str, python: Path, env: Mapping[str, str]):
        self.tool = tool  # "uv" or "pip"
        self.path = path
        self.python = python
        self.env = env

    @property
    def name(self) -> str:
        return self.tool

    @property
    def identity(self) -> str:
        return f"{self.tool}:{proc.executable_identity(self.path)}"

    def version(self) -> str:
        """``uv 0.13.8`` / ``pip 23.0.1``, for the log."""
        if self.tool == "pip" and Path(sys.prefix).resolve() == self.python.parent.parent.resolve():
            from importlib.metadata import PackageNotFoundError, version

            with contextlib.suppress(PackageNotFoundError):
                return f"pip {version('pip')}"  # no 0.3 s interpreter start for the log
        argv = (
            [self.path, "--version"]
            if self.tool == "uv"
            else [str(self.python), "-m", "pip", "--version"]
        )
        try:
            result = proc.run(argv, self.env, timeout=30)
        except (OSError, proc.subprocess.TimeoutExpired):
            return self.tool
        words = result.stdout.split()
        return " ".join(words[:2]) if words else self.tool

    def _argv(self, request: PipRequest, dry_run: bool) -> List[str]:
        if self.tool == "uv":
            return uv_argv(self.path, str(self.python), pip_env_options(request, self.env), dry_run)
        return pip_argv(str(self.python), request, dry_run)

    def plan(self, request: PipRequest, target: TargetEnv) -> PipPlan:
        result = proc.run(self._argv(request, dry_run=True), self.env)
        if result.returncode != 0:
            raise ExtrasError(
                f"{PIP_VAR}: {self.tool} cannot install {request.describe()}:\n"
                f"{installer_message(result.output)}"
            )
        if self.tool == "uv":
            changes = parse_uv_dry_run(result.stderr + "\n" + result.stdout)
        else:
            changes = parse_pip_dry_run(result.stdout)
        backups: List[Path] = []
        # Whatever the plan installs under a name that is installed replaces it: keep a copy.
        for name, _ in changes.install + changes.remove:
            if canonical_name(name) in target.distributions:
                backups.extend(target.dist_files(name))
        return PipPlan(request, changes, backups, result.seconds)

    def apply(self, plan: PipPlan) -> float:
        result = proc.run(self._argv(plan.request, dry_run=False), self.env)
        if result.returncode != 0:
            raise ExtrasError(
                f"{PIP_VAR}: {self.tool} failed to install {plan.request.describe()}:\n"
                f"{installer_message(result.output)}"
            )
        return result.seconds


def installer_environment(env: Dict[str, str], tool: str) -> Dict[str, str]:
    """Settings every run of the pip installer gets (the caller's values win)."""
    env = dict(env)
    if tool == "uv":
        env.setdefault("UV_LINK_MODE", "copy")  # the cache is often another file system
        env.setdefault("UV_PYTHON_DOWNLOADS", "never")
        env.setdefault("UV_NO_PROGRESS", "1")
    else:
        env.setdefault("PIP_NO_INPUT", "1")
        env.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    return env


def choose_pip_installer(
    environ: Mapping[str, str], prefix: Path, python: Path, env: Dict[str, str]
) -> PipInstaller:
    """EXTRA_PIP_INSTALLER (auto by default): uv from the environment or PATH, else pip."""
    wanted = (environ.get(PIP_INSTALLER_VAR) or "auto").strip().lower()
    if wanted not in ("auto", *PIP_INSTALLERS):
        raise ExtrasError(
            f"{PIP_INSTALLER_VAR}={wanted!r}: use auto or one of {', '.join(PIP_INSTALLERS)}"
        )
    if wanted in ("auto", "uv"):
        local = prefix / "bin" / "uv"
        found = (
            str(local) if os.access(local, os.X_OK) else shutil.which("uv", path=env.get("PATH"))
        )
        if found:
            return PipInstaller("uv", found, python, installer_environment(env, "uv"))
        if wanted == "uv":
            raise ExtrasError(f"{PIP_INSTALLER_VAR}=uv but there is no uv in {prefix}/bin or PATH")
    return PipInstaller("pip", str(python), python, installer_environment(env, "pip"))
