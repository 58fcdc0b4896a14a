"""The fingerprint of an install of extra packages: a digest of everything that decides its
result, stored in the environment after a complete success. Equal at the next start (a
restarted container): nothing to do, in milliseconds."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Optional

from bootstrap.extras.environment import state_dir
from bootstrap.extras.variables import CONDA_INSTALLER_VAR, PIP_INSTALLER_VAR

if TYPE_CHECKING:
    from bootstrap.extras.conda_request import CondaRequest
    from bootstrap.extras.pip_request import PipRequest

FILE = "installed.json"

# Variables that change what an install would do: part of the fingerprint.
INDEX_VARIABLES = (
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_FIND_LINKS",
    "PIP_NO_INDEX",
    "PIP_PRE",
    "PIP_CONSTRAINT",
    "PIP_TRUSTED_HOST",
    "UV_INDEX_URL",
    "UV_DEFAULT_INDEX",
    "UV_EXTRA_INDEX_URL",
    "UV_INDEX",
    "UV_FIND_LINKS",
    "UV_NO_INDEX",
    "UV_PRERELEASE",
    "UV_CONSTRAINT",
    "UV_INDEX_STRATEGY",
    "CONDA_CHANNELS",
    "CONDA_CHANNEL_ALIAS",
    CONDA_INSTALLER_VAR,
    PIP_INSTALLER_VAR,
    "EXTRA_ALLOW_CORE_CHANGES",
)


def digest(
    conda: Optional[CondaRequest],
    conda_installer: str,
    pip: Optional[PipRequest],
    pip_installer: str,
    environ: Mapping[str, str],
    python: str,
) -> str:
    """A digest of everything that decides the result of an install: the normalized requests,
    the installers' identities, the index/channel variables and the Python version."""
    payload = {
        "version": 1,
        "python": python,
        "conda": None
        if conda is None
        else {
            "installer": conda_installer,
            "channels": list(conda.channels),
            "override": conda.override_channels,
            "specs": list(conda.specs),
        },
        "pip": None
        if pip is None
        else {
            "installer": pip_installer,
            "options": [list(option) for option in pip.options],
            "requirements": list(pip.requirements),
        },
        "env": {name: environ[name] for name in INDEX_VARIABLES if environ.get(name)},
    }
    encoded = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()


# Stored in the environment ---------------------------------------------------------------


def read(prefix: Path) -> Optional[str]:
    """The fingerprint of the last complete install, if any."""
    try:
        data = json.loads((state_dir(prefix) / FILE).read_text())
    except (OSError, ValueError):
        return None
    value = data.get("fingerprint") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def write(prefix: Path, value: str, details: dict) -> None:
    """Record a successful install (``details`` are for people reading the file)."""
    target = state_dir(prefix) / FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_suffix(".tmp")
    temporary.write_text(json.dumps({"fingerprint": value, **details}, indent=2) + "\n")
    os.replace(temporary, target)


def forget(prefix: Path) -> None:
    """The environment changed (a rollback): no install is complete any more."""
    with contextlib.suppress(FileNotFoundError):
        (state_dir(prefix) / FILE).unlink()
