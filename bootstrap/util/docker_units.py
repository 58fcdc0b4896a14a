"""Docker's own units for flow-run resources, as ``docker run`` reads them: memory and shared
memory in bytes with an optional b, k, m, g or t suffix (powers of 1024), CPUs as a decimal
number of CPUs (``--cpus 1.5``), a PIDs limit as a whole number."""

from __future__ import annotations

import re
from typing import Any, Dict, Mapping, Optional

_BYTES = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)b?\s*$", re.IGNORECASE)
_FACTORS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_bytes(value: Any) -> int:
    """``2g`` -> 2147483648; an int is bytes already. ValueError with Docker's examples."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _BYTES.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a size Docker reads (e.g. 512m, 2g, 1073741824)")
    number, unit = match.groups()
    return int(float(number) * _FACTORS[unit.lower()])


def parse_cpus(value: Any) -> float:
    try:
        cpus = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not a number of CPUs (e.g. 0.5, 2)") from None
    if cpus <= 0:
        raise ValueError(f"{value!r} CPUs: must be more than 0")
    return cpus


def run_cpus(host_config: Mapping[str, Any]) -> Optional[float]:
    """The CPUs a DockerRun's host_config asks for (nano_cpus, or cpu_quota / cpu_period)."""
    if host_config.get("nano_cpus"):
        return int(host_config["nano_cpus"]) / 1e9
    if host_config.get("cpu_quota") is not None:
        return int(host_config["cpu_quota"]) / int(host_config.get("cpu_period") or 100000)
    return None


def host_config_defaults(
    memory: Optional[str], cpus: Optional[float], pids: Optional[int], shm: Optional[str]
) -> Dict[str, Any]:
    """The docker SDK's create_host_config arguments for the agent's defaults."""
    defaults: Dict[str, Any] = {}
    if memory is not None:
        defaults["mem_limit"] = parse_bytes(memory)
    if cpus is not None:
        defaults["nano_cpus"] = int(cpus * 1e9)
    if pids is not None:
        defaults["pids_limit"] = pids
    if shm is not None:
        defaults["shm_size"] = parse_bytes(shm)
    return defaults
