"""Where settings come from, and what is said when one is wrong.

Precedence, highest first: CLI options, environment variables (``BOOTSTRAP_*``), the YAML
settings file (``--settings-file`` or ``BOOTSTRAP_SETTINGS_FILE``), defaults. Every error
names the setting, where it came from (option, variable or file) and its value (hidden for
secrets), and is raised as a SettingsError (exit 2).
"""

from __future__ import annotations

import difflib
import json
import os
import re
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import yaml
from pydantic import ValidationError

from bootstrap.settings.model import ENV_PREFIX, MAPPING_SETTINGS, Settings, env_name
from bootstrap.util.errors import SettingsError
from bootstrap.util.secrets import is_secret_name

SETTINGS_FILE_ENV = "BOOTSTRAP_SETTINGS_FILE"


def read_settings_file(path: Path) -> Dict[str, Any]:
    """The file's settings, keys with ``-`` or ``_`` alike."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise SettingsError(f"cannot read settings file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise SettingsError(
            f"settings file {path} is not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SettingsError(f"settings file {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(
            f"settings file {path} must be a mapping of setting names to values, "
            f"not a {type(data).__name__}"
        )
    return {str(key).replace("-", "_"): value for key, value in data.items()}


# BOOTSTRAP_* variables that are not settings but are read by the bootstrap.
OTHER_VARIABLES = (SETTINGS_FILE_ENV,)


def unknown_variables(environ: Mapping[str, str]) -> Optional[str]:
    """A message naming the ``BOOTSTRAP_*`` variables that are no setting (a typo that would
    otherwise leave its setting at the default), with the closest known name; None if all
    are known."""
    known = [env_name(name) for name in Settings.__fields__] + list(OTHER_VARIABLES)
    lines = []
    for variable in sorted(name for name in environ if name.upper().startswith(ENV_PREFIX)):
        if variable.upper() in known:
            continue
        close = difflib.get_close_matches(variable.upper(), known, n=1, cutoff=0.75)
        hint = f" (did you mean {close[0]}?)" if close else ""
        lines.append(f"unknown setting {variable}{hint}")
    if not lines:
        return None
    return "\n".join([*lines, "(prefect-agent-bootstrap settings --help lists them all)"])


def load_settings(
    cli: Optional[Mapping[str, Any]] = None, settings_file: Optional[Path] = None
) -> Settings:
    """Build the settings from CLI values, the environment and the YAML file.

    Raises SettingsError naming each bad setting, where it came from and its value.
    """
    cli = {key: value for key, value in (cli or {}).items() if value is not None}
    unknown = unknown_variables(os.environ)
    if unknown:
        raise SettingsError(unknown)
    if settings_file is None and os.environ.get(SETTINGS_FILE_ENV):
        settings_file = Path(os.environ[SETTINGS_FILE_ENV])
    file_values = read_settings_file(settings_file) if settings_file else {}
    try:
        return Settings(**{**cli, **_below(file_values, cli, os.environ)})
    except ValidationError as exc:
        raise SettingsError(_describe(exc, cli, settings_file, file_values, os.environ)) from None
    except ValueError as exc:  # pydantic's SettingsError for undecodable env values
        raise SettingsError(_describe_env_parse_error(exc, os.environ)) from None


def _below(
    file_values: Mapping[str, Any], cli: Mapping[str, Any], environ: Mapping[str, str]
) -> Dict[str, Any]:
    """The file's values as the lowest source: what neither an option nor a variable sets.
    A mapping setting merges key by key across the sources, options over variables over
    the file (as pydantic merges its own sources)."""
    upper_env = {name.upper(): value for name, value in environ.items()}
    values: Dict[str, Any] = {}
    for key, value in file_values.items():
        variable = upper_env.get(env_name(key))
        if key in MAPPING_SETTINGS and isinstance(value, dict):
            from_env = _parsed_mapping(key, variable)
            from_cli = cli.get(key, {})
            if from_env is not None and isinstance(from_cli, dict):
                values[key] = {**value, **from_env, **from_cli}
        elif key not in cli and variable is None:
            values[key] = value
    return values


def _parsed_mapping(key: str, variable: Optional[str]) -> Optional[Dict[str, Any]]:
    """A mapping variable's value; None if it does not parse as one (pydantic says why)."""
    if variable is None:
        return {}
    try:
        parsed = Settings.__config__.parse_env_var(key, variable)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _describe_env_parse_error(exc: ValueError, environ: Mapping[str, str]) -> str:
    cause = exc.__cause__ or exc
    match = re.search(r'env var "([^"]+)"', str(exc))
    name = match.group(1).upper() if match else "a BOOTSTRAP_ variable"
    raw = environ.get(name, environ.get(name.lower(), ""))
    return f"invalid setting {name}={shown_value(name, raw)!s}: cannot parse it ({cause})"


def _describe(
    exc: ValidationError,
    cli: Mapping[str, Any],
    settings_file: Optional[Path],
    file_values: Mapping[str, Any],
    environ: Mapping[str, str],
) -> str:
    lines = []
    upper_env = {key.upper(): value for key, value in environ.items()}
    for error in exc.errors():
        field = str(error["loc"][0])
        suffix = "".join(f"[{part}]" for part in error["loc"][1:])
        if field in cli:
            origin, raw = f"--{field.replace('_', '-')}", cli[field]
        elif env_name(field) in upper_env:
            origin, raw = env_name(field), upper_env[env_name(field)]
        elif field in file_values:
            origin, raw = f"{field} in {settings_file}", file_values[field]
        else:
            origin, raw = field, None
        if error["type"] == "value_error.extra" and not suffix:
            place = f" in {settings_file}" if field in file_values else ""
            lines.append(f"unknown setting {field!r}{place}{_known_hint(field)}")
            continue
        shown = "" if raw is None else f"={shown_value(origin, raw)}"
        lines.append(f"invalid setting {origin}{suffix}{shown}: {error['msg']}")
    return "\n".join(lines)


def _known_hint(field: str) -> str:
    close = difflib.get_close_matches(field, list(Settings.__fields__), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def shown_value(origin: str, raw: Any) -> str:
    """A value as an error message may show it: quoted, or hidden when it may be secret."""
    text = raw if isinstance(raw, str) else json.dumps(raw, default=str)
    if "agent_env" in origin.lower() or is_secret_name(origin):
        return "<hidden>"
    return repr(text) if isinstance(raw, str) else text
