"""Whether an install can have changed what the core imports, from what it touched: the
check after an install imports the core in a fresh interpreter (2 s) only when it could have.

An install that only *added* distributions (nothing removed, upgraded or overwritten, no
conda step) changes what an ``import`` of the core finds only through

- a ``.pth`` file, which every interpreter runs at start;
- ``sitecustomize`` / ``usercustomize``, which every interpreter imports at start;
- a top-level module or package under a name the environment has already (a package
  directory ``yaml/`` beside a module ``yaml.py``: the finder may take the new one).

- a module the core imports only when it is there (requests tries ``simplejson``, urllib3
  ``brotli``): the image build records every top-level name the core asked for and did
  not find while importing what the check imports (``optional-imports.txt`` in the
  environment's state directory, written by the image build: :func:`record_optional_imports`);
- anything else on the import path (a wheel's ``.data`` may write into ``lib/pythonX.Y``);
- entry points other than commands (plugins the core may discover).

If none of the added files is one of those, the core imports exactly the files it imported
before, and the dependency check (``uv pip check``) is all that is left to run. The added
files are read from the new distributions' own RECORDs; "before" is the undo journal's
listing of the environment. Pure functions: the caller reads both.
"""

from __future__ import annotations

import contextlib
import csv
import os
import re
from pathlib import Path
from typing import Iterable, List, Optional, Set

STARTUP_MODULES = ("sitecustomize", "usercustomize")
COMMAND_GROUPS = ("console_scripts", "gui_scripts")  # entry points that only make commands
OPTIONAL_IMPORTS = ".prefect-agent/optional-imports.txt"  # in the environment (the build)
_SUFFIX = re.compile(r"(\.cpython-[^.]+)?(\.abi3)?\.(py|pyc|so|pyd|pth)$")


def top_level_name(name: str) -> Optional[str]:
    """The importable name a site-packages entry provides (None: metadata, caches)."""
    if name.endswith((".dist-info", ".egg-info", ".data")) or name in ("__pycache__", "."):
        return None
    return _SUFFIX.sub("", name) or None


def why_import_check(
    site: str,
    before: Set[str],
    added: Iterable[str],
    removed: Iterable[str] = (),
    conda_changed: bool = False,
    optional: Optional[Set[str]] = None,
    plugin_groups: Iterable[str] = (),
) -> Optional[str]:
    """Why the core must be imported again to be trusted, or None. ``site``: site-packages
    relative to the prefix; ``before``: every prefix-relative path before the install;
    ``added``: the prefix-relative files the new distributions record; ``optional``: the
    core's optional imports (None: not known, so every install is checked);
    ``plugin_groups``: the new distributions' entry-point groups."""
    if conda_changed:
        return "the conda step changed the environment"
    if optional is None:
        return "the core's optional imports are not on record"
    plugins = sorted(set(plugin_groups) - set(COMMAND_GROUPS))
    if plugins:
        return f"new entry points ({', '.join(plugins)}): plugins the core may load"
    removed = sorted(removed)
    if removed:
        return f"installed distributions were replaced or removed ({', '.join(removed)})"
    existing = {
        top
        for path in before
        if path.startswith(site + "/") and "/" not in path[len(site) + 1 :]
        for top in [top_level_name(path[len(site) + 1 :])]
        if top
    }
    for path in sorted(added):
        if path in before:
            return f"{path} existed and was overwritten"
        if not path.startswith(site + "/"):
            if path.startswith("lib/"):  # lib/pythonX.Y, lib-dynload: on the import path
                return f"{path}: outside site-packages, on the import path"
            continue  # commands (bin/) and data (share/): not on the import path
        first = path[len(site) + 1 :].split("/", 1)[0]
        if path.endswith(".pth") and "/" not in path[len(site) + 1 :]:
            return f"{path}: a .pth file runs in every interpreter"
        top = top_level_name(first)
        if top in STARTUP_MODULES:
            return f"{path}: {top} runs in every interpreter"
        if top in existing:
            return f"{path}: the environment has a module {top!r} already"
        if top in optional:
            return f"{path}: the core imports {top!r} when it is there"
    return None


def optional_imports(prefix: Path) -> Optional[Set[str]]:
    """The core's optional imports, as the image build recorded them (None: no record)."""
    try:
        return set((prefix / OPTIONAL_IMPORTS).read_text().split())
    except OSError:
        return None


def entry_point_groups(prefix: Path, dist_infos: Iterable[str]) -> Set[str]:
    """The entry-point groups (``[console_scripts]`` ...) the new distributions declare."""
    groups: Set[str] = set()
    for dist_info in dist_infos:
        try:
            text = (prefix / dist_info / "entry_points.txt").read_text(errors="replace")
        except OSError:
            continue
        groups |= {line.strip()[1:-1] for line in text.splitlines() if line.strip()[:1] == "["}
    return groups


def recorded_files(prefix: Path, site: str, dist_infos: Iterable[str]) -> Optional[List[str]]:
    """The prefix-relative files the new distributions' RECORDs list (their dist-info
    directories given prefix-relative); None if one cannot be read (then nothing is known)."""
    files: List[str] = []
    for dist_info in dist_infos:
        try:
            with (prefix / dist_info / "RECORD").open(newline="", encoding="utf-8") as handle:
                rows = [row[0] for row in csv.reader(handle) if row and row[0]]
        except (OSError, UnicodeDecodeError, csv.Error):
            return None
        files += [os.path.normpath(os.path.join(site, row)) for row in rows]
    return files


def new_dist_infos(prefix: Path, site: str, before: Set[str]) -> List[str]:
    """The dist-info directories in site-packages that were not there before."""
    try:
        names = os.listdir(prefix / site)
    except OSError:
        return []
    return [
        f"{site}/{name}"
        for name in names
        if name.endswith(".dist-info") and f"{site}/{name}" not in before
    ]


class _Absent:
    """Last on the import path: every top-level module asked for that nothing provides."""

    def __init__(self) -> None:
        self.names: Set[str] = set()

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        self.names.add(name.split(".", 1)[0])


def record_optional_imports(prefix: Path, modules: Iterable[str]) -> Set[str]:
    """Import ``modules`` (those of them installed) with a recorder last on the import path
    and write the names nobody provided to the environment's record. Run by the image build
    once everything is installed (``python -m bootstrap.extras.touched``)."""
    import importlib
    import sys

    absent = _Absent()
    sys.meta_path.append(absent)
    try:
        for name in modules:
            # a module not in this image (lume-services) is recorded absent too: an install
            # that adds it gets the import check, which imports it
            with contextlib.suppress(ImportError):
                importlib.import_module(name)
    finally:
        sys.meta_path.remove(absent)
    record = prefix / OPTIONAL_IMPORTS
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text("".join(f"{name}\n" for name in sorted(absent.names)))
    return absent.names


if __name__ == "__main__":
    import sys

    from bootstrap.extras.check import SMOKE_IMPORTS

    names = record_optional_imports(
        Path(sys.prefix), [module for modules in SMOKE_IMPORTS.values() for module in modules]
    )
    print(f"optional imports of the core, absent: {len(names)}", file=sys.stderr)
