"""EXTRA_CONDA_PACKAGES: parse the value, then plan and apply with a conda CLI (mamba,
micromamba or conda, whichever the base image has), else with py-rattler
(:mod:`~bootstrap.extras.rattler`).

With a conda CLI (conda bases such as miniforge), ``<tool> install --dry-run --json``
plans, then ``<tool> install --yes`` applies. Channels come from the request (``-c``) and
the tool's own configuration (``.condarc``, ``CONDA_CHANNELS``, ...).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple

from bootstrap.extras import proc
from bootstrap.extras.conda_request import CondaRequest
from bootstrap.extras.environment import TargetEnv
from bootstrap.extras.plan import (
    Changes,
    CommandInstaller,
    Installer,
    InstallPlan,
    installer_message,
)
from bootstrap.extras.rattler import Rattler, rattler_available
from bootstrap.extras.variables import CONDA_INSTALLER_VAR, CONDA_VAR
from bootstrap.util.errors import ExtrasError

CONDA_INSTALLERS = ("mamba", "micromamba", "conda", "rattler")


def conda_cli_argv(tool: str, prefix: str, request: CondaRequest, dry_run: bool) -> List[str]:
    argv = [tool, "install", "--yes", "--prefix", prefix]
    if dry_run:
        argv += ["--dry-run", "--json"]
    else:
        argv += ["--quiet"] if tool != "micromamba" else []
    for channel in request.channels:
        argv += ["--channel", channel]
    if request.override_channels:
        argv.append("--override-channels")
    return [*argv, *request.specs]


# Dry-run output ----------------------------------------------------------------------------


def _conda_action(item: object) -> Tuple[str, str, str]:
    if isinstance(item, dict):
        name = str(item.get("name", ""))
        version = str(item.get("version", ""))
        build = str(item.get("build_string", item.get("build", "")))
        if not name and item.get("dist_name"):
            name, version, build = str(item["dist_name"]).rsplit("-", 2)
        return name, version, build
    text = str(item).split("::")[-1]
    name, version, build = text.rsplit("-", 2)
    return name, version, build


class UnreadablePlan(ExtrasError):
    """The conda installer's dry run printed no JSON plan."""


def parse_conda_dry_run(output: str) -> Tuple[Changes, List[str]]:
    """``conda|mamba|micromamba install --dry-run --json``: (changes, unlinked dist names).

    Raises ExtrasError with conda's own message when the JSON reports an error."""
    start = output.find("{")
    if start < 0:
        raise UnreadablePlan(f"the conda installer printed no plan:\n{output[-2000:]}")
    try:
        data = json.loads(output[start:])
    except json.JSONDecodeError:
        raise UnreadablePlan(f"cannot read the conda installer's plan:\n{output[-2000:]}") from None
    if data.get("error") or data.get("success") is False:
        message = data.get("message") or data.get("error") or "unknown error"
        raise ExtrasError(str(message))
    actions = data.get("actions") or {}
    if isinstance(actions, list):  # some versions: a list of transactions
        merged: Dict[str, list] = {}
        for entry in actions:
            for key, value in (entry or {}).items():
                if isinstance(value, list):
                    merged.setdefault(key, []).extend(value)
        actions = merged
    changes = Changes()
    unlinked: List[str] = []
    for item in actions.get("LINK", []) or []:
        name, version, _ = _conda_action(item)
        changes.install.append((name, version))
    for item in actions.get("UNLINK", []) or []:
        name, version, build = _conda_action(item)
        changes.remove.append((name, version))
        unlinked.append(f"{name}-{version}-{build}")
    return changes, unlinked


# The installers ---------------------------------------------------------------------------

CondaPlan = InstallPlan[CondaRequest]


class CondaCli(CommandInstaller):
    """mamba / micromamba / conda, whichever the base image has."""

    kind = "conda"

    def __init__(self, tool: str, path: str, prefix: Path, env: Mapping[str, str]):
        super().__init__(tool, path, env)
        self.prefix = prefix

    def describe(self) -> str:
        return f"{self.tool} ({self.path})"

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


def choose_conda_installer(
    environ: Mapping[str, str], prefix: Path, env: Dict[str, str], python: str
) -> Installer:
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
            if not rattler_available():
                continue
            return Rattler(prefix, env, python)
        found = shutil.which(tool, path=path_value)
        if found:
            return CondaCli(tool, found, prefix, env)
    raise ExtrasError(
        f"{CONDA_VAR} is set but no conda installer is available "
        f"({CONDA_INSTALLER_VAR}={wanted}; looked for {', '.join(candidates)})"
    )
