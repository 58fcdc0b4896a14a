"""Value rules for settings that are not Kubernetes objects: names, labels, environment
variables, addresses, Docker volumes and networks, and the list and mapping syntax.

Each ``check_*`` returns the (normalised) value or raises ``ValueError`` with a message that
says what the value must look like; :mod:`bootstrap.settings.loading` turns that into a
SettingsError naming the setting and where it came from.
"""

from __future__ import annotations

import re
from typing import Callable, Dict, List, Optional
from urllib.parse import urlsplit

from bootstrap.util.engine import looks_like_a_docker_socket

# C0 and C1 controls, and the bidirectional ones that make text read other than it is.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
NAME_MAX = 255  # the server's limit for tenant and project names
_VOLUME_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_VOLUME_MODES = {
    "ro", "rw", "z", "Z", "shared", "slave", "private", "rshared", "rslave", "rprivate",
    "nocopy", "consistent", "cached", "delegated",
}  # fmt: skip
# Host paths whose mount hands a flow run the host (root-equivalent): warned about.
HOST_HANDOVER_PATHS = ("/", "/proc", "/sys", "/dev", "/etc", "/boot", "/root", "/var/lib/docker")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DOCKER_NETWORK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
ENGINE_SCHEMES = ("unix", "tcp", "http", "https")


def check_name(value: str, what: str) -> str:
    """A name shown by the server (tenant, project): stripped, not empty, no control
    characters."""
    value = value.strip()
    if not value:
        raise ValueError(f"the {what} must not be empty")
    if _CONTROL.search(value):
        raise ValueError(f"{what} {value!r} contains control characters")
    if len(value) > NAME_MAX:
        raise ValueError(f"the {what} must be at most {NAME_MAX} characters ({len(value)} given)")
    return value


def check_agent_name(value: Optional[str]) -> Optional[str]:
    if value is not None and (not value.strip() or _CONTROL.search(value)):
        raise ValueError("must be a non-empty name without control characters")
    return value


def check_label(value: str) -> str:
    """A Prefect label: stripped, not empty, no whitespace, ``;`` or control characters, at
    most 255 characters (a run's labels must match the agent's exactly: ``lume docker`` is
    one label, not two)."""
    value = value.strip()
    if not value:
        raise ValueError("a label must not be empty")
    if _CONTROL.search(value):
        raise ValueError(f"label {value!r} contains control characters")
    if re.search(r"[\s;]", value):
        raise ValueError(
            f"label {value!r} contains whitespace or ';': separate labels with commas "
            '(lume,docker) or give a JSON list (["lume", "docker"])'
        )
    if len(value) > 255:
        raise ValueError("a label must be at most 255 characters")
    return value


def check_env(variables: Dict[str, str]) -> Dict[str, str]:
    """Environment variables: valid names, no NUL byte in a value."""
    for key, item in variables.items():
        if not _ENV_NAME.match(key):
            raise ValueError(f"{key!r} is not a valid environment variable name")
        if "\x00" in item:
            raise ValueError(f"the value of {key} contains a NUL byte")
    return variables


def check_env_files(files: Dict[str, str]) -> Dict[str, str]:
    """Variables whose values are read from files: valid names, absolute paths."""
    check_env(files)
    for key, path in files.items():
        if not path.startswith("/"):
            raise ValueError(f"{key}={path!r}: the file must be an absolute path")
    return files


def is_env_name(name: str) -> bool:
    return bool(_ENV_NAME.match(name))


def check_agent_address(value: str) -> str:
    """``http://[HOST]:PORT``, as prefect's agent accepts it for its health server."""
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{value!r} has an invalid port") from exc
    if parts.scheme != "http" or port is None or parts.path not in ("", "/"):
        raise ValueError(f"{value!r} is not of the form http://[HOST]:PORT")
    if port == 0:  # prefect's agent refuses it ("Must specify port in agent address")
        raise ValueError(f"{value!r}: the port must be between 1 and 65535")
    return value


def check_positive(value: Optional[int]) -> Optional[int]:
    if value is not None and value <= 0:
        raise ValueError("must be a positive integer")
    return value


PULL_POLICIES = ("IfNotPresent", "Always", "Never")  # Kubernetes' imagePullPolicy values


def check_pull_policy(value: str) -> str:
    """One of PULL_POLICIES, whatever its case or separators (ifnotpresent, if-not-present)."""
    key = re.sub(r"[-_\s]", "", str(value)).lower()
    for policy in PULL_POLICIES:
        if policy.lower() == key:
            return policy
    raise ValueError(f"{value!r} is not a pull policy: one of {', '.join(PULL_POLICIES)}")


def one_of(*choices: str):
    """A check: the value, lower-cased, is one of ``choices``."""

    def check(value: str) -> str:
        chosen = str(value).strip().lower()
        if chosen not in choices:
            raise ValueError(f"{value!r}: one of {', '.join(choices)}")
        return chosen

    return check


def check_absolute_path(value: str) -> str:
    if not str(value).startswith("/"):
        raise ValueError(f"{value!r}: must be an absolute path")
    return str(value)


def check_engine_url(value: Optional[str]) -> Optional[str]:
    if value is not None and urlsplit(value).scheme not in ENGINE_SCHEMES:
        raise ValueError(f"{value!r} is not a Docker engine URL (unix://, tcp://, ...)")
    return value


def check_volume(value: str) -> str:
    """``SOURCE:TARGET[:MODE]`` or ``TARGET``: an absolute container path; the source an
    absolute host path or a volume name; modes Docker knows (``ro``, ``rw``, ``z``, ...)."""
    parts = value.split(":")
    if not 1 <= len(parts) <= 3 or not all(parts):
        raise ValueError(f"{value!r} is not a volume spec (SOURCE:TARGET[:MODE] or TARGET)")
    target = parts[1] if len(parts) > 1 else parts[0]
    if not target.startswith("/"):
        raise ValueError(f"{value!r}: the container path must be absolute")
    if len(parts) > 1 and not (parts[0].startswith("/") or _VOLUME_NAME.match(parts[0])):
        raise ValueError(
            f"{value!r}: the source must be an absolute host path or a volume name "
            "(a relative path means nothing to the Docker engine)"
        )
    if len(parts) == 3:
        modes = parts[2].split(",")
        unknown = [mode for mode in modes if mode not in _VOLUME_MODES]
        if unknown or {"ro", "rw"} <= set(modes):
            raise ValueError(
                f"{value!r}: {parts[2]!r} is not a mount mode (ro or rw, and z, Z, "
                "shared, slave, private, nocopy, ...)"
            )
    return value


def volume_warnings(volumes: List[str]) -> List[str]:
    """What a flow run gets of the host through the agent's volumes, said loudly."""
    warnings = []
    for volume in volumes:
        parts = volume.split(":")
        if len(parts) < 2:
            continue
        source = parts[0].rstrip("/") or "/"
        modes = parts[2].split(",") if len(parts) == 3 else []
        # The same rule as the agent's, which gives such a run the socket's group; a named
        # volume is not the host's, whatever its target.
        socket = source.startswith("/") and (
            looks_like_a_docker_socket(source) or looks_like_a_docker_socket(parts[1])
        )
        if source in HOST_HANDOVER_PATHS or socket:
            access = "read-only" if "ro" in modes else "read-write"
            warnings.append(
                f"BOOTSTRAP_DOCKER_VOLUMES gives every flow run the host's {source} "
                f"({access}): whoever can register a flow controls this host"
            )
    return warnings


def check_network(value: str) -> str:
    if not _DOCKER_NETWORK.match(value):
        raise ValueError(f"{value!r} is not a Docker network name")
    return value


def check_http_url(value: Optional[str]) -> Optional[str]:
    if value is not None:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
    return value


def within_ceiling(
    value: object,
    ceiling: object,
    parse: Callable[[object], float],
    setting: str,
    parse_ceiling: Optional[Callable[[object], float]] = None,
) -> None:
    """A default above its ceiling (BOOTSTRAP_FLOW_RUN_MAX_*) would be given to runs the
    policy must refuse (Kubernetes) or let past the ceiling (Docker): refuse it. ``parse``
    takes the value, ``parse_ceiling`` (default: the same) the ceiling, to one unit; 0 or
    less is Docker's "no limit", above any ceiling."""
    if value is None or ceiling is None:
        return
    amount = parse(value)
    if amount <= 0 or amount > (parse_ceiling or parse)(ceiling):
        shown = f"{value} (no limit)" if amount <= 0 else str(value)
        raise ValueError(f"{shown} is above {setting}={ceiling}: a default must fit its ceiling")
