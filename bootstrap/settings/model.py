"""The settings model: every bootstrap setting, its default, its description and its rule.

The Kubernetes settings are :mod:`~bootstrap.settings.kubernetes_model`'s. The rules
themselves live in :mod:`~bootstrap.settings.rules` (and ``kubernetes_*rules``); this module
only says which rule applies to which setting. Where values come from (options,
environment, YAML file) is :mod:`~bootstrap.settings.loading`.
"""

from __future__ import annotations

from enum import Enum
from functools import partial
from typing import Any, Dict, List, Optional

from pydantic import BaseModel, BaseSettings, Field, validator
from slugify import slugify

from bootstrap.settings import rules
from bootstrap.settings.docker_model import DockerSettings, size
from bootstrap.settings.kubernetes_model import KubernetesSettings
from bootstrap.settings.policy_rules import ALL, RULES
from bootstrap.settings.validation import blank_is_none, optional, rule
from bootstrap.util.docker_units import parse_cpus
from bootstrap.util.secrets import flow_run_env_secrets
from bootstrap.util.values import parse_value

ENV_PREFIX = "BOOTSTRAP_"
# Mapping settings (KEY=VALUE items in the environment and as options).
MAPPING_SETTINGS = (
    "agent_env",
    "agent_env_files",
    "kubernetes_labels",
    "kubernetes_agent_node_selector",
    "kubernetes_job_node_selector",
)


class AgentType(str, Enum):
    docker = "docker"
    kubernetes = "kubernetes"
    local = "local"


class LogLevel(str, Enum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


class LogFormat(str, Enum):
    text = "text"
    json = "json"


class ProjectSpec(BaseModel):
    """A Prefect project to create in the tenant if it does not exist yet."""

    name: str
    description: Optional[str] = None

    class Config:
        extra = "forbid"

    _name = rule("name", check=partial(rules.check_name, what="project name"))


CEILING_SETTINGS = ("flow_run_max_memory", "flow_run_max_cpus", "flow_run_max_pids")


class AgentSettings(BaseSettings):
    """The tenant, projects, agent and Docker settings, with their rules (a rule on a list
    item must sit in the class that declares the list: pydantic 1 does not pass it on)."""

    # Tenant and projects ------------------------------------------------------------------
    tenant: str = Field("default", description="Tenant name; created if missing.")
    tenant_slug: Optional[str] = Field(
        None, description="Tenant slug (default: derived from the name)."
    )
    projects: List[ProjectSpec] = Field(
        default_factory=list,
        description="Projects to create in the tenant if missing: names, or JSON objects "
        "with name and description.",
    )
    wait_timeout: float = Field(
        120.0, description="Seconds to wait for the Prefect Server before giving up."
    )

    # Agent -------------------------------------------------------------------------------
    agent_type: AgentType = Field(AgentType.docker, description="docker, kubernetes or local.")
    agent_name: Optional[str] = Field(None, description="Agent name shown in the UI.")
    agent_labels: List[str] = Field(
        default_factory=list,
        description="Agent labels; a flow run's labels must be a subset of these.",
    )
    agent_env: Dict[str, str] = Field(
        default_factory=dict,
        description="Environment variables set on every flow run (KEY=VALUE items).",
    )
    agent_env_files: Dict[str, str] = Field(
        default_factory=dict,
        description="Secret variables set on every flow run, each read from a file (NAME=PATH "
        "items: Docker and Kubernetes secrets mounted as files); never logged.",
    )
    agent_address: Optional[str] = Field(
        None,
        description="Agent health server address (default: http://127.0.0.1:8080 for docker "
        "and local agents, http://:8080, all interfaces, for kubernetes).",
    )
    log_level: LogLevel = Field(LogLevel.INFO, description="Bootstrap and agent log level.")
    log_format: LogFormat = Field(
        LogFormat.text, description="text, or json: one JSON object per line (bootstrap and agent)."
    )
    max_polls: Optional[int] = Field(
        None, description="Stop the agent after this many polls (default: never)."
    )
    no_cloud_logs: bool = Field(False, description="Do not send flow-run logs to the server.")
    show_flow_logs: bool = Field(
        True, description="Docker/local agents: show flow-run output in the agent log."
    )
    agent_max_poll_interval: float = Field(
        1.0,
        description="Longest wait between two polls for flow runs, in seconds (Prefect's own "
        "back-off goes up to 10).",
    )
    agent_liveness_multiple: float = Field(
        60.0,
        description="Unhealthy when no poll succeeded for this many max poll intervals.",
    )
    agent_api_outage_limit: float = Field(
        600.0,
        description="Stop (exit 3 or 5) once the API or the Docker engine has failed for this "
        "many seconds, so a restart policy acts; 0: never.",
    )
    agent_max_flow_runs: int = Field(
        0,
        ge=0,
        description="At most this many of the agent's flow runs alive at once (Docker "
        "containers or Kubernetes Jobs); children of its own runs may use as many again; "
        "0: no limit.",
    )
    metrics_port: Optional[int] = Field(
        None, description="Serve Prometheus metrics at /metrics on this port (default: off)."
    )
    flow_run_allow: List[str] = Field(
        default_factory=list,
        description="Flow-run policy rules to lift, for every flow run (or all): "
        + ", ".join(RULES),
    )
    flow_run_max_memory: Optional[str] = Field(
        None,
        description="Ceiling of a flow run's memory limit (a run asking more, or none, is "
        "refused: rule resources); also its default when docker_memory or "
        "kubernetes_job_memory_limit is unset.",
    )
    flow_run_max_cpus: Optional[float] = Field(
        None,
        description="Ceiling of a flow run's CPUs (rule resources); also the default when "
        "docker_cpus or kubernetes_job_cpu_limit is unset.",
    )
    flow_run_max_pids: Optional[int] = Field(
        None,
        ge=1,
        description="Ceiling of a Docker flow run's PIDs limit (rule resources); "
        "also the default when docker_pids_limit is unset.",
    )
    flow_run_allowed_paths: List[str] = Field(
        default_factory=list,
        description="Host paths flow runs may mount besides the agent's own volumes.",
    )
    flow_run_extras: bool = Field(
        True,
        description="Hand the agent's EXTRA_* packages (and its cache volume) to every flow run, "
        "which installs them before it starts (off: flow images have them already).",
    )

    # Case-insensitive, as prefect's own --log-level is: DEBUG or debug, docker or Docker.
    _log_level_case = rule(
        "log_level", pre=True, check=lambda v: v.upper() if isinstance(v, str) else v
    )
    _log_format_case = rule(
        "log_format", pre=True, check=lambda v: v.lower() if isinstance(v, str) else v
    )
    _agent_type_case = rule(
        "agent_type", pre=True, check=lambda v: v.lower() if isinstance(v, str) else v
    )

    _tenant = rule("tenant", check=partial(rules.check_name, what="tenant name"))

    @validator("tenant_slug", always=True)
    def _tenant_slug(cls, value: Optional[str], values: Dict[str, Any]) -> Optional[str]:
        if value is None:
            name = values.get("tenant")
            if name is None:  # the name itself was invalid; that error is reported
                return None
            derived = slugify(name)
            if not derived:
                raise ValueError(f"cannot derive a slug from the tenant name {name!r}; set one")
            return derived
        if value != slugify(value):
            raise ValueError(f"{value!r} is not a slug (did you mean {slugify(value)!r}?)")
        return value

    @validator("projects", pre=True)
    def _projects_from_names(cls, value: Any) -> Any:
        if isinstance(value, (str, dict)):
            value = [value]
        if isinstance(value, (list, tuple)):  # a tuple: repeated --projects options
            return [{"name": item} if isinstance(item, str) else item for item in value]
        return value

    @validator("projects")
    def _unique_projects(cls, value: List[ProjectSpec]) -> List[ProjectSpec]:
        names = [project.name for project in value]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"project names must be unique; repeated: {', '.join(duplicates)}")
        return value

    @validator("agent_max_poll_interval")
    def _poll_interval(cls, value: float) -> float:
        if not 0.1 <= value <= 300:
            raise ValueError("must be between 0.1 and 300 seconds")
        return value

    @validator("agent_liveness_multiple")
    def _liveness_multiple(cls, value: float) -> float:
        if not 2 <= value <= 10_000:
            raise ValueError("must be between 2 and 10000")
        return value

    @validator("agent_api_outage_limit")
    def _outage_limit(cls, value: float) -> float:
        if not 0 <= value <= 7 * 24 * 3600:
            raise ValueError("must be 0 (never) or a number of seconds up to a week")
        return value

    @validator("metrics_port")
    def _metrics_port(cls, value: Optional[int]) -> Optional[int]:
        if value is not None and not 1 <= value <= 65535:
            raise ValueError("must be a TCP port, 1 to 65535")
        return value

    @validator("flow_run_allow", each_item=True)
    def _policyrule(cls, value: str) -> str:
        if value not in RULES and value != ALL:
            raise ValueError(f"{value!r} is not a flow-run policy rule: {', '.join([*RULES, ALL])}")
        return value

    _blank_ceilings = rule(*CEILING_SETTINGS, pre=True, check=blank_is_none)
    _max_memory = rule("flow_run_max_memory", check=optional(size))
    _max_cpus = rule("flow_run_max_cpus", check=optional(parse_cpus))

    @validator("flow_run_allowed_paths", each_item=True)
    def _allowed_path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"{value!r} is not an absolute host path")
        return value

    @validator("wait_timeout")
    def _wait_timeout(cls, value: float) -> float:
        if not 0 < value <= 24 * 3600:
            raise ValueError("must be more than 0 and at most 86400 seconds")
        return value

    _agent_name = rule("agent_name", check=rules.check_agent_name)
    _label = rule("agent_labels", each_item=True, check=rules.check_label)
    _labels_once = rule("agent_labels", check=lambda labels: list(dict.fromkeys(labels)))
    _agent_env = rule("agent_env", check=rules.check_env)
    _agent_env_files = rule("agent_env_files", check=rules.check_env_files)
    _agent_address = rule("agent_address", check=optional(rules.check_agent_address))
    _positive = rule("max_polls", check=rules.check_positive)


class Settings(KubernetesSettings, DockerSettings, AgentSettings):
    """Everything the bootstrap needs besides Prefect's own configuration: the agent
    settings, then the Docker agent's (:mod:`~bootstrap.settings.docker_model`), the
    Kubernetes ones (:mod:`~bootstrap.settings.kubernetes_model`), then the local agent's."""

    # Local agent -------------------------------------------------------------------------
    local_import_paths: List[str] = Field(
        default_factory=list, description="Import paths added to local flow runs."
    )
    local_hostname_label: bool = Field(
        False,
        description="Add the hostname as a label (off: a container's hostname is random).",
    )

    class Config:
        env_prefix = ENV_PREFIX
        case_sensitive = False
        extra = "forbid"
        validate_assignment = True

        @classmethod
        def parse_env_var(cls, field_name: str, raw: str) -> Any:
            """Lists: JSON or ``a,b``; mappings: JSON or ``K=V,K2=V2``."""
            return parse_value(raw, mapping=field_name in MAPPING_SETTINGS)

        @classmethod
        def customise_sources(cls, init_settings, env_settings, file_secret_settings):
            # Options and the settings file arrive as init values (loading.load_settings
            # leaves out file values the environment overrides); no secrets directory.
            return init_settings, env_settings

    def health_address(self) -> str:
        """Where the agent's health server listens: loopback for Docker and local agents (the
        image's health check runs inside the container; nothing outside can poke the agent),
        every interface for Kubernetes (the kubelet probes the pod's address)."""
        if self.agent_address:
            return self.agent_address
        if self.agent_type is AgentType.kubernetes:
            return "http://:8080"
        return "http://127.0.0.1:8080"

    def secret_values(self) -> List[str]:
        """Values that must never be printed: flow-run variables with secret-looking names,
        and credentials in URLs among their values."""
        return flow_run_env_secrets(self.agent_env)


def env_name(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


# Which part of the start-up each setting configures: a subcommand offers the options of the
# parts it uses (``tenant --help`` lists no Kubernetes options); environment variables and
# the settings file still reach every setting.
SETTING_PARTS = ("logging", "wait", "tenant", "projects", "agent", "docker", "kubernetes", "local")
_PART_OF = {
    "log_level": "logging",
    "log_format": "logging",
    "wait_timeout": "wait",
    "tenant": "tenant",
    "tenant_slug": "tenant",
    "projects": "projects",
}


def setting_part(name: str) -> str:
    """The part of the start-up the setting ``name`` configures (one of SETTING_PARTS)."""
    prefix = name.split("_", 1)[0]
    if name in _PART_OF:
        return _PART_OF[name]
    return prefix if prefix in ("docker", "kubernetes", "local") else "agent"
