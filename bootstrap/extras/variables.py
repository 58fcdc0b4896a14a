"""The variables the extras step reads, read once (:class:`ExtrasEnv`)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

CONDA_VAR = "EXTRA_CONDA_PACKAGES"
PIP_VAR = "EXTRA_PIP_PACKAGES"
APT_VAR = "EXTRA_APT_PACKAGES"
CONDA_INSTALLER_VAR = "EXTRA_CONDA_INSTALLER"  # auto | mamba | micromamba | conda | rattler
PIP_INSTALLER_VAR = "EXTRA_PIP_INSTALLER"  # auto | uv | pip
CA_VAR = "EXTRA_CA_CERT"  # a PEM file (or PEM text) the installers and the command trust
PREFIX_VAR = "PREFECT_ENV"  # the runtime environment (the image sets it)


@dataclass(frozen=True)
class ExtrasEnv:
    """What to install, where, and the whole environment (installers inherit it, and read
    their index and channel settings from it)."""

    conda: str
    pip: str
    apt: str
    ca_cert: str
    prefix: Path
    environ: Mapping[str, str]

    @classmethod
    def read(cls, environ: Mapping[str, str], prefix: Optional[Path] = None) -> ExtrasEnv:
        def value(name: str) -> str:
            return (environ.get(name) or "").strip()

        return cls(
            conda=value(CONDA_VAR),
            pip=value(PIP_VAR),
            apt=value(APT_VAR),
            ca_cert=value(CA_VAR),
            prefix=Path(prefix or environ.get(PREFIX_VAR) or sys.prefix),
            environ=environ,
        )

    @property
    def requested(self) -> bool:
        return bool(self.conda or self.pip or self.apt)
