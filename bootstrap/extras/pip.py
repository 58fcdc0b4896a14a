"""EXTRA_PIP_PACKAGES: plan (``--dry-run``) and apply with uv, or with
``python -m pip`` where there is no uv.

The request and its command lines are :mod:`~bootstrap.extras.pip_request`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Mapping, Optional

from bootstrap.extras import proc
from bootstrap.extras.core import Core, CoreChangeError
from bootstrap.extras.environment import TargetEnv, canonical_name
from bootstrap.extras.pip_request import PipRequest, pip_argv, pip_env_options, uv_argv
from bootstrap.extras.plan import (
    Changes,
    CommandInstaller,
    InstallPlan,
    installer_message,
)
from bootstrap.extras.variables import PIP_INSTALLER_VAR, PIP_VAR
from bootstrap.util.errors import ExtrasError

PIP_INSTALLERS = ("uv", "pip")

# Dry-run output ----------------------------------------------------------------------------

_UV_LINE = re.compile(r"^\s*([+\-~])\s+([A-Za-z0-9][A-Za-z0-9._-]*)(?:==(\S+)|\s+@\s+(\S+))?")


def parse_uv_dry_run(output: str) -> Changes:
    """``uv pip install --dry-run`` lines `` + name==1.0``, `` - name==0.9``, `` ~ ...``."""
    changes = Changes()
    for line in output.splitlines():
        match = _UV_LINE.match(line)
        if not match:
            continue
        sign, name, version, url = match.groups()
        item = (name, version or url or "")
        if sign == "+":
            changes.install.append(item)
        elif sign == "-":
            changes.remove.append(item)
        else:  # ~ reinstall
            changes.install.append(item)
            changes.remove.append(item)
    return changes


def parse_pip_dry_run(output: str) -> Changes:
    """pip's ``Would install a-1.0 b-2.0`` line (replaced packages are not listed)."""
    changes = Changes()
    for line in output.splitlines():
        if line.startswith("Would install "):
            for item in line[len("Would install ") :].split():
                name, _, version = item.rpartition("-")
                changes.install.append((name or item, version if name else ""))
    return changes


# The installer ----------------------------------------------------------------------------

PipPlan = InstallPlan[PipRequest]


class PipInstaller(CommandInstaller):
    """uv (``uv pip install``) or pip (``python -m pip install``) into the environment."""

    kind = "pip"

    def __init__(self, tool: str, path: str, python: Path, env: Mapping[str, str]):
        super().__init__(tool, path, env)  # tool: "uv" or "pip"
        self.python = python
        self.core: Optional[Core] = None
        self.constraint: Optional[str] = None  # a file pinning the core

    def protect(self, core: Core) -> None:
        """Resolve with the core held at its versions (a constraints file)."""
        self.core = core
        handle, self.constraint = tempfile.mkstemp(prefix="extras-core-", suffix=".txt")
        with os.fdopen(handle, "w") as constraints:
            constraints.write(core.constraints())

    def close(self, force: bool = False) -> None:
        if self.constraint:
            with contextlib.suppress(OSError):
                os.unlink(self.constraint)
            self.constraint = None

    def describe(self) -> str:
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

    def _argv(self, request: PipRequest, dry_run: bool, protected: bool = True) -> List[str]:
        constraint = self.constraint if protected else None
        if self.tool == "uv":
            options = pip_env_options(request, self.env)
            return uv_argv(self.path, str(self.python), options, dry_run, constraint)
        return pip_argv(str(self.python), request, dry_run, constraint)

    def _changes(self, result: proc.Completed) -> Changes:
        if self.tool == "uv":
            return parse_uv_dry_run(result.stderr + "\n" + result.stdout)
        return parse_pip_dry_run(result.stdout)

    def plan(self, request: PipRequest, target: TargetEnv) -> PipPlan:
        label = f"Planning the pip step ({self.tool})"
        result = proc.run(self._argv(request, dry_run=True), self.env, progress=label)
        if result.returncode != 0:
            self._explain_core_conflict(request, result)
            raise ExtrasError(
                f"{PIP_VAR}: {self.tool} cannot install {request.describe()}:\n"
                f"{installer_message(result.output)}"
            )
        changes = self._changes(result)
        backups: List[Path] = []
        # Whatever the plan installs under a name that is installed replaces it: keep a copy.
        for name, _ in changes.install + changes.remove:
            if canonical_name(name) in target.distributions:
                backups.extend(target.dist_files(name))
        return PipPlan(request, changes, backups, result.seconds)

    def _explain_core_conflict(self, request: PipRequest, protected: proc.Completed) -> None:
        """The plan held to the core failed: would it work by changing the core? Then say
        so (what it would change, who needs the core as it is, the installer's reason)."""
        if self.core is None:
            return
        free = proc.run(self._argv(request, dry_run=True, protected=False), self.env)
        if free.returncode != 0:
            return  # fails anyway: the request itself is the problem
        conflicts = self.core.changes_to(self._changes(free))
        if conflicts:
            raise CoreChangeError(
                PIP_VAR, request.describe(), conflicts, installer_message(protected.output, 12)
            )

    def apply(self, plan: PipPlan) -> float:
        label = f"Installing the pip step ({self.tool})"
        result = proc.run(self._argv(plan.request, dry_run=False), self.env, progress=label)
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
