"""Value rules for settings that are not Kubernetes objects: names, labels, environment
variables, addresses, Docker volumes and networks, and the list and mapping syntax.

Each ``check_*`` returns the (normalised) value or raises ``ValueError`` with a message that
says what the value must look like; :mod:`bootstrap.settings.loading` turns that into a
SettingsError naming the setting and where it came from.
"""

from __future__ import annotations

import re
from typing import Dict, Iterable, List, Optional
from urllib.parse import urlsplit

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DOCKER_NETWORK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
ENGINE_SCHEMES = ("unix", "tcp", "http", "https")


def split_list(raw: str) -> List[str]:
    """``a, b`` or one item per line: the items, stripped, empty ones dropped."""
    return [item.strip() for item in re.split(r"[,\n]", raw) if item.strip()]


def parse_pairs(items: Iterable[str]) -> Dict[str, str]:
    """``KEY=VALUE`` items (the value may contain ``=``) as a mapping; the key is stripped."""
    pairs: Dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"{item!r} is not KEY=VALUE")
        pairs[key.strip()] = value
    return pairs


def check_name(value: str, what: str) -> str:
    """A name shown by the server (tenant, project): stripped, not empty, no control
    characters."""
    value = value.strip()
    if not value:
        raise ValueError(f"the {what} must not be empty")
    if _CONTROL.search(value):
        raise ValueError(f"{what} {value!r} contains control characters")
    return value


def check_agent_name(value: Optional[str]) -> Optional[str]:
    if value is not None and (not value.strip() or _CONTROL.search(value)):
        raise ValueError("must be a non-empty name without control characters")
    return value


def check_label(value: str) -> str:
    """A Prefect label: stripped, not empty, no control characters, at most 255 characters."""
    value = value.strip()
    if not value:
        raise ValueError("a label must not be empty")
    if _CONTROL.search(value):
        raise ValueError(f"label {value!r} contains control characters")
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


def check_engine_url(value: Optional[str]) -> Optional[str]:
    if value is not None and urlsplit(value).scheme not in ENGINE_SCHEMES:
        raise ValueError(f"{value!r} is not a Docker engine URL (unix://, tcp://, ...)")
    return value


def check_volume(value: str) -> str:
    """``SOURCE:TARGET[:MODE]`` or ``TARGET``, with an absolute container path."""
    parts = value.split(":")
    if not 1 <= len(parts) <= 3 or not all(parts):
        raise ValueError(f"{value!r} is not a volume spec (SOURCE:TARGET[:MODE] or TARGET)")
    target = parts[1] if len(parts) > 1 else parts[0]
    if not target.startswith("/"):
        raise ValueError(f"{value!r}: the container path must be absolute")
    return value


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
