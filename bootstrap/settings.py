"""Bootstrap settings: environment (``BOOTSTRAP_*``), a YAML file, and CLI options.

Precedence, highest first: CLI options, environment variables, the YAML settings file
(``--settings-file`` or ``BOOTSTRAP_SETTINGS_FILE``), defaults.

List settings read from the environment accept JSON (``["a", "b"]``) or a comma- or
newline-separated list (``a,b``); mapping settings accept JSON or ``KEY=VALUE`` items.

The Prefect Server address and API key are *not* bootstrap settings: they come from
Prefect's own configuration (see :mod:`bootstrap.server`), so the bootstrap and the agent
it starts always talk to the same server.
"""

from __future__ import annotations

import contextvars
import json
import os
import re
from enum import Enum
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, BaseSettings, Field, ValidationError, validator
from slugify import slugify

from bootstrap import k8svalues
from bootstrap.errors import SettingsError

ENV_PREFIX = "BOOTSTRAP_"
SETTINGS_FILE_ENV = "BOOTSTRAP_SETTINGS_FILE"

_settings_file: contextvars.ContextVar[Optional[Path]] = contextvars.ContextVar(
    "settings_file", default=None
)

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DOCKER_NETWORK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_SECRET_KEY = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH)", re.IGNORECASE)


class AgentType(str, Enum):
    docker = "docker"
    kubernetes = "kubernetes"
    local = "local"


class PullPolicy(str, Enum):
    Always = "Always"
    IfNotPresent = "IfNotPresent"
    Never = "Never"


class LogLevel(str, Enum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


class ProjectSpec(BaseModel):
    """A Prefect project to create in the tenant if it does not exist yet."""

    name: str
    description: Optional[str] = None

    class Config:
        extra = "forbid"

    @validator("name")
    def _name(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("a project name must not be empty")
        if _CONTROL.search(value):
            raise ValueError(f"project name {value!r} contains control characters")
        return value


def is_secret_name(name: str) -> bool:
    """Whether an environment variable name suggests a secret value (masked in output)."""
    return bool(_SECRET_KEY.search(name))


def _split_list(raw: str) -> List[str]:
    return [item.strip() for item in re.split(r"[,\n]", raw) if item.strip()]


class Settings(BaseSettings):
    """Everything the bootstrap needs besides Prefect's own configuration."""

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
    agent_address: str = Field(
        "http://:8080", description="Agent health server address (all interfaces by default)."
    )
    log_level: LogLevel = Field(LogLevel.INFO, description="Bootstrap and agent log level.")
    max_polls: Optional[int] = Field(
        None, description="Stop the agent after this many polls (default: never)."
    )
    no_cloud_logs: bool = Field(False, description="Do not send flow-run logs to the server.")
    show_flow_logs: bool = Field(
        True, description="Docker/local agents: show flow-run output in the agent log."
    )

    # Docker agent ------------------------------------------------------------------------
    docker_base_url: Optional[str] = Field(
        None, description="Docker engine URL (default: DOCKER_HOST, else the local socket)."
    )
    docker_no_pull: bool = Field(False, description="Never pull flow-run images.")
    docker_volumes: List[str] = Field(
        default_factory=list,
        description="Volumes for flow-run containers (host:container[:mode]).",
    )
    docker_networks: List[str] = Field(
        default_factory=list, description="Docker networks for flow-run containers."
    )
    docker_client_timeout: Optional[int] = Field(
        None, description="Docker API timeout in seconds (Prefect's default: 60)."
    )

    # Kubernetes agent --------------------------------------------------------------------
    kubernetes_namespace: Optional[str] = Field(
        None, description="Namespace for flow-run Jobs (Prefect's default: default)."
    )
    kubernetes_job_template: Optional[str] = Field(
        None, description="Path or URL of the flow-run Job template."
    )
    kubernetes_service_account_name: Optional[str] = Field(
        None, description="Service account for flow-run Jobs."
    )
    kubernetes_image_pull_secrets: List[str] = Field(
        default_factory=list, description="Image pull secrets for flow-run Jobs."
    )
    kubernetes_delete_finished_jobs: bool = Field(
        True, description="Delete flow-run Jobs once they finish."
    )
    # Kubernetes manifests and the flow-run Job template (bootstrap/kubernetes.py) ----------
    kubernetes_image: Optional[str] = Field(
        None,
        description="Image of the agent Deployment and default image of flow-run Jobs "
        "(required by 'kubernetes manifest').",
    )
    kubernetes_image_pull_policy: Optional[PullPolicy] = Field(
        None, description="Always, IfNotPresent or Never (default: Kubernetes' own)."
    )
    kubernetes_name: str = Field(
        "prefect-agent",
        description="Name of the agent's Deployment, ServiceAccount, Role and RoleBinding.",
    )
    kubernetes_agent_namespace: str = Field(
        "default", description="Namespace of the agent's Deployment and ServiceAccount."
    )
    kubernetes_labels: Dict[str, str] = Field(
        default_factory=dict,
        description="Labels added to the manifests and to flow-run Jobs (KEY=VALUE items).",
    )
    kubernetes_agent_cpu_request: Optional[str] = Field(
        "100m", description="Agent container CPU request (empty: none)."
    )
    kubernetes_agent_cpu_limit: Optional[str] = Field(
        "1", description="Agent container CPU limit (empty: none)."
    )
    kubernetes_agent_memory_request: Optional[str] = Field(
        "256Mi", description="Agent container memory request (empty: none)."
    )
    kubernetes_agent_memory_limit: Optional[str] = Field(
        "1Gi", description="Agent container memory limit (empty: none)."
    )
    kubernetes_job_cpu_request: Optional[str] = Field(
        "500m", description="Flow-run container CPU request; a KubernetesRun's overrides it."
    )
    kubernetes_job_cpu_limit: Optional[str] = Field(
        None, description="Flow-run container CPU limit; a KubernetesRun's overrides it."
    )
    kubernetes_job_memory_request: Optional[str] = Field(
        "512Mi", description="Flow-run container memory request; a KubernetesRun's overrides it."
    )
    kubernetes_job_memory_limit: Optional[str] = Field(
        None, description="Flow-run container memory limit; a KubernetesRun's overrides it."
    )
    kubernetes_job_env_secrets: List[str] = Field(
        default_factory=list,
        description="Secrets whose keys become environment variables of flow-run containers.",
    )
    kubernetes_run_as_user: int = Field(
        1000, description="Non-root uid of the agent and flow-run containers."
    )
    kubernetes_run_as_group: int = Field(
        1000, description="Gid of the agent and flow-run containers."
    )
    kubernetes_api_key_secret: Optional[str] = Field(
        None, description="Secret holding the Prefect API key, if the server needs one."
    )
    kubernetes_api_key_secret_key: str = Field(
        "api-key", description="Key of the Prefect API key in that Secret."
    )
    kubernetes_prefect_api: Optional[str] = Field(
        None,
        description="Prefect API URL as the agent pod reaches it (default: the URL "
        "PREFECT__CLOUD__API / PREFECT__SERVER__* give here).",
    )

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
            text = raw.strip()
            if text.startswith(("[", "{")):
                return json.loads(text)
            items = _split_list(text)
            if field_name in ("agent_env", "kubernetes_labels"):
                pairs = {}
                for item in items:
                    key, sep, value = item.partition("=")
                    if not sep:
                        raise ValueError(f"{item!r} is not KEY=VALUE")
                    pairs[key.strip()] = value
                return pairs
            return items

        @classmethod
        def customise_sources(cls, init_settings, env_settings, file_secret_settings):
            return init_settings, env_settings, _yaml_settings_source

    # Validators --------------------------------------------------------------------------

    # Case-insensitive, as prefect's own --log-level is: DEBUG or debug, docker or Docker.
    @validator("log_level", pre=True)
    def _log_level_case(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @validator("agent_type", pre=True)
    def _agent_type_case(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @validator("tenant")
    def _tenant(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("the tenant name must not be empty")
        if _CONTROL.search(value):
            raise ValueError("the tenant name contains control characters")
        return value

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

    @validator("wait_timeout")
    def _wait_timeout(cls, value: float) -> float:
        if not 0 < value <= 24 * 3600:
            raise ValueError("must be more than 0 and at most 86400 seconds")
        return value

    @validator("agent_name")
    def _agent_name(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and (not value.strip() or _CONTROL.search(value)):
            raise ValueError("must be a non-empty name without control characters")
        return value

    @validator("agent_labels", each_item=True)
    def _label(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("a label must not be empty")
        if _CONTROL.search(value):
            raise ValueError(f"label {value!r} contains control characters")
        if len(value) > 255:
            raise ValueError("a label must be at most 255 characters")
        return value

    @validator("agent_labels")
    def _dedupe_labels(cls, value: List[str]) -> List[str]:
        return list(dict.fromkeys(value))

    @validator("agent_env")
    def _env_names(cls, value: Dict[str, str]) -> Dict[str, str]:
        for key, item in value.items():
            if not _ENV_NAME.match(key):
                raise ValueError(f"{key!r} is not a valid environment variable name")
            if "\x00" in item:
                raise ValueError(f"the value of {key} contains a NUL byte")
        return value

    @validator("agent_address")
    def _agent_address(cls, value: str) -> str:
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

    @validator("max_polls", "docker_client_timeout")
    def _positive(cls, value: Optional[int]) -> Optional[int]:
        if value is not None and value <= 0:
            raise ValueError("must be a positive integer")
        return value

    @validator("docker_base_url")
    def _docker_base_url(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and urlsplit(value).scheme not in ("unix", "tcp", "http", "https"):
            raise ValueError(f"{value!r} is not a Docker engine URL (unix://, tcp://, ...)")
        return value

    @validator("docker_volumes", each_item=True)
    def _volume(cls, value: str) -> str:
        parts = value.split(":")
        if not 1 <= len(parts) <= 3 or not all(parts):
            raise ValueError(f"{value!r} is not a volume spec (SOURCE:TARGET[:MODE] or TARGET)")
        target = parts[1] if len(parts) > 1 else parts[0]
        if not target.startswith("/"):
            raise ValueError(f"{value!r}: the container path must be absolute")
        return value

    @validator("docker_networks", each_item=True)
    def _network(cls, value: str) -> str:
        if not _DOCKER_NETWORK.match(value):
            raise ValueError(f"{value!r} is not a Docker network name")
        return value

    @validator("kubernetes_namespace")
    def _namespace(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and (len(value) > 63 or not _DNS_LABEL.match(value)):
            raise ValueError(f"{value!r} is not a Kubernetes namespace name (RFC 1123 label)")
        return value

    @validator("kubernetes_service_account_name")
    def _service_account(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and (len(value) > 253 or not _DNS_SUBDOMAIN.match(value)):
            raise ValueError(f"{value!r} is not a Kubernetes object name (RFC 1123 subdomain)")
        return value

    @validator("kubernetes_image_pull_secrets", each_item=True)
    def _pull_secret(cls, value: str) -> str:
        if len(value) > 253 or not _DNS_SUBDOMAIN.match(value):
            raise ValueError(f"{value!r} is not a Kubernetes secret name (RFC 1123 subdomain)")
        return value

    @validator("kubernetes_image", "kubernetes_prefect_api", "kubernetes_api_key_secret", pre=True)
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @validator("kubernetes_image")
    def _image(cls, value: Optional[str]) -> Optional[str]:
        return None if value is None else k8svalues.check_image_reference(value)

    @validator("kubernetes_name")
    def _kubernetes_name(cls, value: str) -> str:
        return k8svalues.check_dns_label(value, "object name (RFC 1123 label)")

    @validator("kubernetes_agent_namespace")
    def _agent_namespace(cls, value: str) -> str:
        return k8svalues.check_dns_label(value, "namespace name (RFC 1123 label)")

    @validator("kubernetes_labels")
    def _kubernetes_labels(cls, value: Dict[str, str]) -> Dict[str, str]:
        return k8svalues.check_labels(value)

    @validator(
        "kubernetes_agent_cpu_request",
        "kubernetes_agent_cpu_limit",
        "kubernetes_agent_memory_request",
        "kubernetes_agent_memory_limit",
        "kubernetes_job_cpu_request",
        "kubernetes_job_cpu_limit",
        "kubernetes_job_memory_request",
        "kubernetes_job_memory_limit",
        pre=True,
    )
    def _quantity(cls, value: Any, field: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None  # empty: no request / limit
        text = str(value).strip()  # YAML files give numbers: cpu 2, 0.5
        return k8svalues.check_quantity(text, "cpu" if "_cpu_" in field.name else "memory")

    @validator(
        "kubernetes_agent_cpu_limit",
        "kubernetes_agent_memory_limit",
        "kubernetes_job_cpu_limit",
        "kubernetes_job_memory_limit",
    )
    def _limit_covers_request(cls, value: Optional[str], values: Dict[str, Any], field: Any):
        request = values.get(field.name.replace("_limit", "_request"))
        what = "cpu" if "_cpu_" in field.name else "memory"
        problem = k8svalues.check_request_within_limit(what, request, value)
        if problem:
            raise ValueError(f"{problem} (Kubernetes refuses such a container)")
        return value

    @validator("kubernetes_job_env_secrets", each_item=True)
    def _env_secret(cls, value: str) -> str:
        return k8svalues.check_dns_subdomain(value, "Secret name")

    @validator("kubernetes_run_as_user", "kubernetes_run_as_group")
    def _non_root_id(cls, value: int) -> int:
        if not 1 <= value <= 2**31 - 1:
            raise ValueError("must be a non-root id: 1 to 2147483647")
        return value

    @validator("kubernetes_api_key_secret")
    def _api_key_secret(cls, value: Optional[str]) -> Optional[str]:
        return None if value is None else k8svalues.check_dns_subdomain(value, "Secret name")

    @validator("kubernetes_api_key_secret_key")
    def _api_key_secret_key(cls, value: str) -> str:
        return k8svalues.check_secret_key(value)

    @validator("kubernetes_prefect_api")
    def _prefect_api(cls, value: Optional[str]) -> Optional[str]:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value

    # Helpers -----------------------------------------------------------------------------

    def secret_values(self) -> List[str]:
        """Values that must never be printed: agent env values with secret-looking names."""
        return [value for key, value in self.agent_env.items() if is_secret_name(key) and value]


def env_name(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


def _yaml_settings_source(settings: BaseSettings) -> Dict[str, Any]:
    path = _settings_file.get()
    return read_settings_file(path) if path else {}


def read_settings_file(path: Path) -> Dict[str, Any]:
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


def load_settings(
    cli: Optional[Mapping[str, Any]] = None, settings_file: Optional[Path] = None
) -> Settings:
    """Build the settings from CLI values, the environment and the YAML file.

    Raises SettingsError naming each bad setting, where it came from and its value.
    """
    cli = {key: value for key, value in (cli or {}).items() if value is not None}
    if settings_file is None and os.environ.get(SETTINGS_FILE_ENV):
        settings_file = Path(os.environ[SETTINGS_FILE_ENV])
    token = _settings_file.set(settings_file)
    try:
        return Settings(**cli)
    except ValidationError as exc:
        raise SettingsError(_describe(exc, cli, settings_file, os.environ)) from None
    except ValueError as exc:  # pydantic's SettingsError for undecodable env values
        raise SettingsError(_describe_env_parse_error(exc, os.environ)) from None
    finally:
        _settings_file.reset(token)


def _describe_env_parse_error(exc: ValueError, environ: Mapping[str, str]) -> str:
    cause = exc.__cause__ or exc
    message = str(exc)
    match = re.search(r'env var "([^"]+)"', message)
    name = match.group(1).upper() if match else "a BOOTSTRAP_ variable"
    raw = environ.get(name, environ.get(name.lower(), ""))
    return f"invalid setting {name}={_shown(name, raw)!s}: cannot parse it ({cause})"


def _describe(
    exc: ValidationError,
    cli: Mapping[str, Any],
    settings_file: Optional[Path],
    environ: Mapping[str, str],
) -> str:
    lines = []
    file_values = read_settings_file(settings_file) if settings_file else {}
    lower_env = {key.upper(): value for key, value in environ.items()}
    for error in exc.errors():
        field = str(error["loc"][0])
        where = (str(part) for part in error["loc"][1:])
        suffix = "".join(f"[{part}]" for part in where)
        if field in cli:
            origin, raw = f"--{field.replace('_', '-')}", cli[field]
        elif env_name(field) in lower_env:
            origin, raw = env_name(field), lower_env[env_name(field)]
        elif field in file_values:
            origin, raw = f"{field} in {settings_file}", file_values[field]
        else:
            origin, raw = field, None
        if error["type"] == "value_error.extra" and not suffix:
            place = f" in {settings_file}" if field in file_values else ""
            lines.append(f"unknown setting {field!r}{place}{_known_hint(field)}")
            continue
        shown = "" if raw is None else f"={_shown(origin, raw)}"
        lines.append(f"invalid setting {origin}{suffix}{shown}: {error['msg']}")
    return "\n".join(lines)


def _known_hint(field: str) -> str:
    import difflib

    close = difflib.get_close_matches(field, list(Settings.__fields__), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _shown(origin: str, raw: Any) -> str:
    text = raw if isinstance(raw, str) else json.dumps(raw, default=str)
    if "agent_env" in origin.lower() or is_secret_name(origin):
        return "<hidden>"
    return repr(text) if isinstance(raw, str) else text
