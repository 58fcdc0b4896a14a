"""What is installed in the runtime environment: Python version, site-packages, distributions.

Read in-process when the bootstrap runs from that environment (the image), otherwise by
asking the environment's own interpreter once (tests install into scratch environments).
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

_SCRIPT = r"""
import importlib.metadata as md, json, os, platform, sys, sysconfig
paths = sysconfig.get_paths()
sites = list(dict.fromkeys([paths["purelib"], paths["platlib"]]))
dists = []
for dist in md.distributions(path=sites):
    name = dist.metadata["Name"]
    if name:
        dists.append([name, dist.version, str(getattr(dist, "_path", "")), dist.requires or []])
# PEP 508 marker values of this interpreter (as packaging.markers.default_environment has them)
info = sys.implementation
markers = {
    "implementation_name": info.name,
    "implementation_version": "{0.major}.{0.minor}.{0.micro}".format(info.version),
    "os_name": os.name,
    "platform_machine": platform.machine(),
    "platform_release": platform.release(),
    "platform_system": platform.system(),
    "platform_version": platform.version(),
    "python_full_version": platform.python_version(),
    "platform_python_implementation": platform.python_implementation(),
    "python_version": ".".join(platform.python_version_tuple()[:2]),
    "sys_platform": sys.platform,
}
result = {"version": platform.python_version(), "purelib": paths["purelib"], "dists": dists,
          "markers": markers}
"""


# The bootstrap's own records inside the environment (journal, fingerprint); never part of
# what the journal lists or restores.
STATE_DIR = ".prefect-agent/extras"


def state_dir(prefix: Path) -> Path:
    return prefix / STATE_DIR


def canonical_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class TargetEnv:
    prefix: Path
    python: Path
    version: str
    purelib: Path
    # canonical name -> (version, .dist-info directory)
    distributions: Dict[str, Tuple[str, Path]] = field(default_factory=dict)
    # canonical name -> its requirements (PEP 508 strings, markers unevaluated)
    requires: Dict[str, List[str]] = field(default_factory=dict)
    names: Dict[str, str] = field(default_factory=dict)  # canonical -> as the project spells it
    markers: Dict[str, str] = field(default_factory=dict)  # the interpreter's marker values

    def dist_files(self, name: str) -> List[Path]:
        """Files of an installed distribution, from its RECORD (absolute paths)."""
        entry = self.distributions.get(canonical_name(name))
        if entry is None:
            return []
        dist_info = entry[1]
        record = dist_info / "RECORD"
        files = [dist_info]
        if record.is_file():
            with record.open(newline="") as handle:
                for row in csv.reader(handle):
                    if row and row[0]:
                        files.append(Path(dist_info.parent, row[0]))
        return files


def python_of(prefix: Path) -> Path:
    return prefix / "bin" / "python"


def _same_env(prefix: Path) -> bool:
    try:
        return Path(sys.prefix).resolve() == prefix.resolve()
    except OSError:
        return False


def inspect_env(prefix: Path, python: Optional[Path] = None) -> TargetEnv:
    python = python or python_of(prefix)
    if _same_env(prefix):
        namespace: Dict[str, object] = {}
        exec(_SCRIPT, namespace)  # noqa: S102 - our own constant script
        data = namespace["result"]
    else:
        script = _SCRIPT + "print(json.dumps(result))\n"
        result = subprocess.run(
            [str(python), "-c", script], capture_output=True, text=True, check=True
        )
        data = json.loads(result.stdout)
    target = TargetEnv(prefix, python, data["version"], Path(data["purelib"]))
    target.markers = data["markers"]
    for name, version, path, requires in data["dists"]:
        key = canonical_name(name)
        if key not in target.distributions and path:
            target.distributions[key] = (version, Path(path))
            target.requires[key] = list(requires)
            target.names[key] = name
    return target
