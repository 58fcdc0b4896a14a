"""Prefect's own configuration, as far as the bootstrap needs it (the server address and key),
read the way prefect 1.x reads it: its defaults, then the user configuration file, then
``PREFECT__*`` variables, then ``${section.key}`` references and ``$NAME`` variables.

The user configuration file is ``PREFECT__USER_CONFIG_PATH``, else ``~/.prefect/config.toml``
of the runtime user, else ``/root/.prefect/config.toml``: where lume-services' compose stack
and the Prefect images mount it, which prefect itself would not read when not running as
root. The agent is handed the file found (:func:`user_config_path`), so it reads it too.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

from bootstrap.util.errors import SettingsError

USER_CONFIG_ENV = "PREFECT__USER_CONFIG_PATH"
ROOT_USER_CONFIG = Path("/root/.prefect/config.toml")
# What the bootstrap reads, with prefect/config.toml's defaults (used when prefect's own file,
# read for every other key a reference may name, is not found).
DEFAULTS = {
    "server.host": "http://localhost",
    "server.port": "4200",
    "server.endpoint": "${server.host}:${server.port}",
    "cloud.api": "${server.endpoint}",
    "cloud.api_key": "",
}
_REFERENCE = re.compile(r"\$\{(.[^${}]*)\}")  # prefect's INTERPOLATION_REGEX: innermost first
_VARIABLE = re.compile(r"\$(\w+|\{([^}]*)\})")


def expand(value: str, environ: Mapping[str, str]) -> str:
    """``$NAME``/``${NAME}`` and ``~`` expansion, repeated until stable, as prefect does
    (prefect.configuration.interpolate_env_vars); unknown names stay as they are."""

    def variable(match: re.Match) -> str:
        name = match.group(2) or match.group(1)
        return environ.get(name, match.group(0))

    for _ in range(10):
        expanded = os.path.expanduser(_VARIABLE.sub(variable, value))
        if expanded == value:
            return value
        value = expanded
    return value


def user_config_path(environ: Mapping[str, str]) -> Optional[Path]:
    """The user configuration file prefect should read here, if there is one."""
    configured = environ.get(USER_CONFIG_ENV)
    if configured:
        path = Path(expand(configured, environ))
        if not path.is_file():
            raise SettingsError(f"{USER_CONFIG_ENV}={configured}: no such file")
        return path
    home = environ.get("HOME") or str(Path.home())
    for candidate in (Path(home) / ".prefect" / "config.toml", ROOT_USER_CONFIG):
        try:
            if candidate.is_file():
                return candidate
        except PermissionError:  # a directory on the way this user may not search
            continue
    return None


def _flatten(table: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    flat: Dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def read_user_config(path: Path) -> Dict[str, Any]:
    import toml  # prefect's own TOML reader (a dependency of prefect 1.x)

    try:
        return _flatten(toml.loads(path.read_text()))
    except (OSError, UnicodeDecodeError, toml.TomlDecodeError) as exc:
        raise SettingsError(f"cannot read Prefect's configuration file {path}: {exc}") from None


def prefect_defaults() -> Dict[str, Any]:
    """prefect's packaged config.toml, flattened (found without importing prefect)."""
    spec = importlib.util.find_spec("prefect")
    packaged = Path(spec.origin).parent / "config.toml" if spec and spec.origin else None
    if packaged is None or not packaged.is_file():
        return dict(DEFAULTS)
    return read_user_config(packaged)


def prefect_settings(environ: Mapping[str, str]) -> Dict[str, str]:
    """The keys of :data:`DEFAULTS` as prefect would see them in this environment.

    As prefect does, references resolve against the whole configuration (its defaults, every
    key of the file, every ``PREFECT__`` variable), innermost first, a missing key giving "".
    The backend is "server" (the image's), so ``cloud.api`` is ``${server.endpoint}``. One
    difference: an empty ``PREFECT__`` variable counts as unset here.
    """
    path = user_config_path(environ)
    values: Dict[str, Any] = prefect_defaults()
    if path:
        values.update(read_user_config(path))
    for name, value in environ.items():
        if name.startswith("PREFECT__") and value != "":
            values[".".join(part.lower() for part in name[len("PREFECT__") :].split("__"))] = value
    values["backend"] = "server"
    # $NAME variables first, then references (prefect's order: "${NAME}" is a variable when
    # one is set, a key otherwise).
    values = {key: expand(v, environ) if isinstance(v, str) else v for key, v in values.items()}
    return {key: _resolve(key, values) for key in DEFAULTS}


def _resolve(key: str, values: Mapping[str, Any]) -> str:
    """One value with its ``${section.key}`` references replaced, as prefect replaces them."""
    value = str(values.get(key, ""))
    for _ in range(20):
        match = _REFERENCE.search(value)
        if match is None:
            break
        value = value.replace(match.group(0), str(values.get(match.group(1), "")), 1)
    return value
