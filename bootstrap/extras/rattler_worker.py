"""``python -m bootstrap.extras.rattler_worker``: solve and install conda packages with py-rattler.

Protocol (one JSON object per line): the parent writes the request; the worker solves and
answers ``{"ok": true, "install": [[name, version], ...]}`` or ``{"ok": false, "error": ...}``;
then it waits for the line ``apply`` (install, answer ``{"ok": ...}``) or end of input (exit,
nothing changed). Running in its own process lets the bootstrap stop an install for good:
cancelling py-rattler's futures in-process would not stop its Rust tasks.

The environment need not be a conda environment. What is already there counts as installed
and may not change: conda packages from ``conda-meta/`` and, for what is not a conda
package, the interpreter (``python``, ``python_abi``) and every pip distribution (by name and
version), given to the solver as pinned records that are never linked. So a conda package
that needs ``numpy`` uses the pip-installed numpy rather than overwriting it, and a spec
that would change such a package fails to solve with a message that says so.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Dict, List, Tuple


def _emit(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _present_records(request: dict, conda_names: set) -> Tuple[list, set]:
    """Pinned stand-ins for what pip/venv installed: (records, their names)."""
    from rattler import BuildString, PackageRecord, RepoDataRecord, Version

    version = request["python_version"]
    major, minor = version.split(".")[:2]
    present: Dict[str, Tuple[str, str]] = {
        "python": (version, "0_cpython"),
        "python_abi": (f"{major}.{minor}", f"0_cp{major}{minor}"),
    }
    for name, dist_version in request["pip_distributions"].items():
        # conda names mostly equal PyPI's, some with "_" (typing_extensions): take both
        for alias in (name, name.replace("-", "_")):
            present.setdefault(alias, (dist_version, "pip"))
    records = []
    names = set()
    for name, (record_version, build) in present.items():
        if name in conda_names:
            continue
        try:
            Version(record_version)
            package = PackageRecord(name, record_version, BuildString(build), 0, "noarch")
        except Exception:  # noqa: S112 - a pip name or version conda cannot express
            continue
        file_name = f"{name}-{record_version}-{build}.conda"
        records.append(
            RepoDataRecord(package, file_name, f"file:///present/{file_name}", "file:///present/")
        )
        names.add(name)
    return records, names


async def _solve(request: dict):
    from rattler import (
        Channel,
        ChannelConfig,
        Gateway,
        PrefixRecord,
        VirtualPackage,
        solve,
    )

    prefix = Path(request["prefix"])
    installed: List = []
    meta = prefix / "conda-meta"
    if meta.is_dir():
        installed = [PrefixRecord.from_path(path) for path in sorted(meta.glob("*.json"))]
    conda_names = {record.name.normalized for record in installed}
    stand_ins, stand_in_names = _present_records(request, conda_names)
    config = ChannelConfig(channel_alias=request["channel_alias"])
    channels = [Channel(name, config) for name in request["channels"]]
    gateway = Gateway(cache_dir=Path(request["repodata_cache"]))
    records = await solve(
        sources=channels,
        specs=request["specs"],
        gateway=gateway,
        pinned_packages=list(installed) + stand_ins,
        virtual_packages=[package.into_generic() for package in VirtualPackage.detect()],
    )
    return installed, records, stand_ins, stand_in_names


async def _install(request: dict, installed, records, stand_ins, stand_in_names) -> None:
    from rattler import MatchSpec, install

    solved = [record for record in records if record.name.normalized not in stand_in_names]
    solved_names = {record.name.normalized for record in solved}
    keep = [record for record in installed if record.name.normalized not in solved_names]
    python = [record for record in stand_ins if record.name.normalized == "python"]
    await install(
        solved + keep + python,  # python: tells the linker where noarch packages go
        target_prefix=Path(request["prefix"]),
        cache_dir=Path(request["package_cache"]),
        installed_packages=list(installed),
        ignored_packages=set(stand_in_names),
        show_progress=False,
        # py-rattler passes these through unwrapped: hand it the inner objects
        requested_specs=[MatchSpec(spec)._match_spec for spec in request["specs"]],
    )


def main() -> int:
    request = json.loads(sys.stdin.readline())
    try:
        installed, records, stand_ins, names = asyncio.run(_solve(request))
    except Exception as exc:
        _emit({"ok": False, "error": str(exc)})
        return 1
    already = {(r.name.normalized, str(r.version), r.build) for r in installed}
    new = [
        [record.name.normalized, str(record.version)]
        for record in records
        if record.name.normalized not in names
        and (record.name.normalized, str(record.version), record.build) not in already
    ]
    _emit({"ok": True, "install": new})
    if sys.stdin.readline().strip() != "apply":
        return 0
    if not new:
        _emit({"ok": True})
        return 0
    try:
        asyncio.run(_install(request, installed, records, stand_ins, names))
    except Exception as exc:
        _emit({"ok": False, "error": str(exc)})
        return 1
    _emit({"ok": True})
    return 0


if __name__ == "__main__":
    sys.exit(main())
