"""Settings back into values: the inverse of the parser, for whoever hands settings on
(the Kubernetes Deployment's ``BOOTSTRAP_*`` variables, ``prefect-agent-bootstrap settings``).

``parse(encode(settings))`` gives the same settings: a test holds the two together.
"""

from __future__ import annotations

import json
from typing import Any, Dict

from slugify import slugify

from bootstrap.settings.model import Settings
from bootstrap.util.log import MASK
from bootstrap.util.secrets import flow_run_env_secrets


def plain(value: Any) -> Any:
    """Enums as their values, recursively."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return getattr(value, "value", value)


def _values(settings: Settings) -> Dict[str, Any]:
    values = plain(settings.dict())
    values["projects"] = [
        {key: item for key, item in project.items() if item is not None}
        for project in values["projects"]
    ]
    return values


def as_data(settings: Settings, mask_secrets: bool = True) -> Dict[str, Any]:
    """Every setting as plain data (YAML or JSON), secret agent env values masked."""
    values = _values(settings)
    if mask_secrets:
        values["agent_env"] = {
            key: MASK if flow_run_env_secrets({key: value}) else value
            for key, value in settings.agent_env.items()
        }
    return values


def changed(settings: Settings) -> Dict[str, Any]:
    """The settings that differ from their defaults, as plain data. A tenant slug derived
    from the tenant name is not a change: whoever reads the settings derives it too."""
    values = _values(settings)
    result: Dict[str, Any] = {}
    for name, field in Settings.__fields__.items():
        value = values[name]
        if value == plain(field.get_default()):
            continue
        if name == "tenant_slug" and value == slugify(settings.tenant):
            continue
        result[name] = value
    return result


def encode(value: Any) -> str:
    """One setting's value as its ``BOOTSTRAP_*`` variable holds it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=isinstance(value, dict))
    return str(plain(value))
