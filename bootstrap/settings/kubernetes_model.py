"""The Kubernetes settings: the agent's own options, the flow-run Job template, and the
manifests deploying the agent (:mod:`bootstrap.kubernetes`). Part of
:class:`bootstrap.settings.Settings`; the rules live in
:mod:`~bootstrap.settings.kubernetes_rules` and :mod:`~bootstrap.settings.kubernetes_pod_rules`.
"""

from __future__ import annotations

from enum import Enum
from functools import partial
from typing import Any, Dict, List, Optional

from pydantic import BaseSettings, Field, validator

from bootstrap.settings import kubernetes_pod_rules as pods
from bootstrap.settings import kubernetes_rules as k8s
from bootstrap.settings import rules
from bootstrap.settings.validation import blank_is_none, optional, rule

QUANTITIES = (
    "kubernetes_agent_cpu_request",
    "kubernetes_agent_cpu_limit",
    "kubernetes_agent_memory_request",
    "kubernetes_agent_memory_limit",
    "kubernetes_job_cpu_request",
    "kubernetes_job_cpu_limit",
    "kubernetes_job_memory_request",
    "kubernetes_job_memory_limit",
)


class PullPolicy(str, Enum):
    Always = "Always"
    IfNotPresent = "IfNotPresent"
    Never = "Never"


class KubernetesSettings(BaseSettings):
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
    # Kubernetes manifests and the flow-run Job template (bootstrap/kubernetes/) -----------
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
    kubernetes_job_ttl_seconds: Optional[int] = Field(
        86400,
        ge=0,
        description="Seconds Kubernetes keeps a finished flow-run Job (ttlSecondsAfterFinished), "
        "for the failed ones' logs; none: kept until deleted.",
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
    # Where pods run, what they mount -------------------------------------------------------
    kubernetes_job_volumes: List[str] = Field(
        default_factory=list,
        description="Volumes mounted in flow-run Jobs: KIND:SOURCE:MOUNT_PATH[:ro] items, KIND "
        "hostPath, pvc, configMap or secret (e.g. pvc:lume-data:/data).",
    )
    kubernetes_agent_env_from: List[str] = Field(
        default_factory=list,
        description="Secrets and ConfigMaps whose keys become the agent's variables "
        "(secret:NAME, configMap:NAME items).",
    )
    kubernetes_agent_node_selector: Dict[str, str] = Field(
        default_factory=dict, description="nodeSelector of the agent pod (KEY=VALUE items)."
    )
    kubernetes_job_node_selector: Dict[str, str] = Field(
        default_factory=dict, description="nodeSelector of flow-run pods (KEY=VALUE items)."
    )
    kubernetes_agent_tolerations: List[Dict[str, Any]] = Field(
        default_factory=list,
        description="Tolerations of the agent pod: KEY[=VALUE][:EFFECT] items or JSON objects.",
    )
    kubernetes_job_tolerations: List[Dict[str, Any]] = Field(
        default_factory=list,
        description="Tolerations of flow-run pods: KEY[=VALUE][:EFFECT] items or JSON objects.",
    )
    kubernetes_agent_affinity: Optional[Dict[str, Any]] = Field(
        None, description="affinity of the agent pod (a JSON object)."
    )
    kubernetes_job_affinity: Optional[Dict[str, Any]] = Field(
        None, description="affinity of flow-run pods (a JSON object)."
    )
    kubernetes_agent_priority_class: Optional[str] = Field(
        None, description="priorityClassName of the agent pod."
    )
    kubernetes_job_priority_class: Optional[str] = Field(
        None, description="priorityClassName of flow-run pods."
    )
    kubernetes_agent_read_only_root: bool = Field(
        True,
        description="Run the agent with a read-only root filesystem (emptyDirs for /tmp, the "
        "caches, home and the extras overlay; EXTRA_CONDA_PACKAGES then need it off).",
    )
    kubernetes_network_policy: bool = Field(
        False,
        description="Also deploy a NetworkPolicy admitting no one but the kubelet (and the "
        "monitoring namespace) to the agent's ports.",
    )
    kubernetes_monitoring_namespace: Optional[str] = Field(
        None, description="Namespace whose pods may reach the agent's ports (Prometheus)."
    )

    _blank_is_unset = rule(
        "kubernetes_image",
        "kubernetes_prefect_api",
        "kubernetes_api_key_secret",
        "kubernetes_agent_priority_class",
        "kubernetes_job_priority_class",
        "kubernetes_monitoring_namespace",
        pre=True,
        check=blank_is_none,
    )
    _namespace = rule(
        "kubernetes_namespace",
        "kubernetes_monitoring_namespace",
        check=optional(partial(k8s.check_dns_label, what="namespace name (RFC 1123 label)")),
    )
    _agent_namespace = rule(
        "kubernetes_agent_namespace",
        check=partial(k8s.check_dns_label, what="namespace name (RFC 1123 label)"),
    )
    _kubernetes_name = rule(
        "kubernetes_name", check=partial(k8s.check_dns_label, what="object name (RFC 1123 label)")
    )
    _service_account = rule(
        "kubernetes_service_account_name",
        check=optional(partial(k8s.check_dns_subdomain, what="ServiceAccount name")),
    )
    _secret_names = rule(
        "kubernetes_image_pull_secrets",
        "kubernetes_job_env_secrets",
        each_item=True,
        check=partial(k8s.check_dns_subdomain, what="Secret name"),
    )
    _api_key_secret = rule(
        "kubernetes_api_key_secret",
        check=optional(partial(k8s.check_dns_subdomain, what="Secret name")),
    )
    _api_key_secret_key = rule("kubernetes_api_key_secret_key", check=k8s.check_secret_key)
    _image = rule("kubernetes_image", check=optional(k8s.check_image_reference))
    _kubernetes_labels = rule("kubernetes_labels", check=k8s.check_labels)
    _job_ttl_blank = rule("kubernetes_job_ttl_seconds", pre=True, check=blank_is_none)
    _prefect_api = rule("kubernetes_prefect_api", check=rules.check_http_url)

    @validator(*QUANTITIES, pre=True)
    def _quantity(cls, value: Any, field: Any) -> Any:
        if blank_is_none(value) is None:
            return None  # empty: no request / limit
        text = str(value).strip()  # YAML files give numbers: cpu 2, 0.5
        return k8s.check_quantity(text, "cpu" if "_cpu_" in field.name else "memory")

    @validator(
        "kubernetes_agent_cpu_limit",
        "kubernetes_agent_memory_limit",
        "kubernetes_job_cpu_limit",
        "kubernetes_job_memory_limit",
    )
    def _limit_covers_request(cls, value: Optional[str], values: Dict[str, Any], field: Any):
        request = values.get(field.name.replace("_limit", "_request"))
        what = "cpu" if "_cpu_" in field.name else "memory"
        problem = k8s.check_request_within_limit(what, request, value)
        if problem:
            raise ValueError(f"{problem} (Kubernetes refuses such a container)")
        return value

    @validator("kubernetes_job_cpu_limit", "kubernetes_job_memory_limit")
    def _within_ceiling(cls, value: Optional[str], values: Dict[str, Any], field: Any):
        cpu = "_cpu_" in field.name
        name = "flow_run_max_cpus" if cpu else "flow_run_max_memory"
        rules.within_ceiling(
            value,
            values.get(name),
            _quantity,
            f"BOOTSTRAP_{name.upper()}",
            parse_ceiling=float if cpu else _docker_bytes,
        )
        return value

    @validator("kubernetes_run_as_user", "kubernetes_run_as_group")
    def _non_root_id(cls, value: int) -> int:
        if not 1 <= value <= 2**31 - 1:
            raise ValueError("must be a non-root id: 1 to 2147483647")
        return value

    _volumes = rule("kubernetes_job_volumes", check=pods.check_volumes)
    _env_from = rule("kubernetes_agent_env_from", each_item=True, check=pods.check_env_from)
    _node_selector = rule(
        "kubernetes_agent_node_selector", "kubernetes_job_node_selector", check=k8s.check_selector
    )
    _tolerations = rule(
        "kubernetes_agent_tolerations",
        "kubernetes_job_tolerations",
        pre=True,
        check=pods.parse_tolerations,
    )
    _affinity = rule(
        "kubernetes_agent_affinity", "kubernetes_job_affinity", check=pods.check_affinity
    )
    _priority_class = rule(
        "kubernetes_agent_priority_class",
        "kubernetes_job_priority_class",
        check=optional(partial(k8s.check_dns_subdomain, what="PriorityClass name")),
    )


def _quantity(value: Any) -> float:
    from kubernetes.utils import parse_quantity

    return float(parse_quantity(str(value)))


def _docker_bytes(value: Any) -> float:
    """The ceiling, a Docker size (2g), in bytes."""
    from bootstrap.util.docker_units import parse_bytes

    return float(parse_bytes(value))
