"""Bootstrap settings: ``BOOTSTRAP_*`` variables, CLI options, or a YAML file.

- :mod:`~bootstrap.settings.model` (with :mod:`~bootstrap.settings.kubernetes_model`):
  every setting, its default and which rule applies;
- :mod:`~bootstrap.settings.rules`, :mod:`~bootstrap.settings.kubernetes_rules`,
  :mod:`~bootstrap.settings.kubernetes_pod_rules`: the rules;
- :mod:`~bootstrap.settings.loading`: sources, precedence, error messages;
- :mod:`~bootstrap.settings.encoding`: settings back into values (the parser's inverse).

The Prefect Server address and API key are *not* bootstrap settings: they come from
Prefect's own configuration (:mod:`bootstrap.api.client`), so the bootstrap and the agent it
starts always talk to the same server.
"""

from bootstrap.settings.kubernetes_model import PullPolicy
from bootstrap.settings.loading import SETTINGS_FILE_ENV, load_settings, read_settings_file
from bootstrap.settings.model import (
    ENV_PREFIX,
    AgentType,
    LogFormat,
    LogLevel,
    ProjectSpec,
    Settings,
    env_name,
)

__all__ = [
    "ENV_PREFIX",
    "SETTINGS_FILE_ENV",
    "AgentType",
    "LogFormat",
    "LogLevel",
    "ProjectSpec",
    "PullPolicy",
    "Settings",
    "env_name",
    "load_settings",
    "read_settings_file",
]
