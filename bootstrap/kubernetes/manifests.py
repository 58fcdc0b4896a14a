"""The manifests deploying the Kubernetes agent: ServiceAccount, Role, RoleBinding, a
Deployment running this image with its own entrypoint (extras, tenant and projects happen
in the pod too) and the bootstrap settings as ``BOOTSTRAP_*`` variables, and a
NetworkPolicy if asked for. Pure."""

from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit

import yaml

from bootstrap.api.client import resolve_api
from bootstrap.kubernetes import access, pod
from bootstrap.settings import ENV_PREFIX, AgentType, Settings, env_name
from bootstrap.settings.encoding import changed, encode
from bootstrap.settings.kubernetes_pod_rules import env_from_entry
from bootstrap.settings.rules import is_env_name
from bootstrap.util.errors import SettingsError
from bootstrap.util.secrets import flow_run_env_secrets, redact_url, url_credentials

AGENT_CONTAINER = "agent"

# Settings that only shape the manifests: not handed to the pod as BOOTSTRAP_* variables.
MANIFEST_ONLY_SETTINGS = frozenset(
    {
        "agent_type",  # always kubernetes in the pod
        "kubernetes_agent_namespace",
        "kubernetes_agent_cpu_request",
        "kubernetes_agent_cpu_limit",
        "kubernetes_agent_memory_request",
        "kubernetes_agent_memory_limit",
        "kubernetes_api_key_secret",
        "kubernetes_api_key_secret_key",
        "kubernetes_prefect_api",
        "kubernetes_agent_env_from",
        "kubernetes_agent_node_selector",
        "kubernetes_agent_tolerations",
        "kubernetes_agent_affinity",
        "kubernetes_agent_priority_class",
        "kubernetes_agent_read_only_root",
        "kubernetes_network_policy",
        "kubernetes_monitoring_namespace",
    }
)
# Docker and local agent settings mean nothing in the pod.
_OTHER_AGENT_PREFIXES = ("docker_", "local_")
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "0.0.0.0")  # noqa: S104 - names, not binds


def agent_port(settings: Settings) -> int:
    """The health server's port; the kubelet probes the pod IP, so it must bind all of them."""
    address = settings.agent_address or "http://:8080"  # the pod's own default
    parts = urlsplit(address)
    if parts.port is None or parts.hostname not in (None, "", "0.0.0.0"):  # noqa: S104
        raise SettingsError(
            f"invalid setting agent_address={address!r}: in Kubernetes the "
            "health server must listen on all interfaces for the probes (http://:PORT)"
        )
    return parts.port


def require_image(settings: Settings) -> str:
    if not settings.kubernetes_image:
        raise SettingsError(
            f"the setting kubernetes_image is missing: set {env_name('kubernetes_image')} or "
            "--kubernetes-image to the agent image the cluster can pull "
            "(e.g. registry.example.org/prefect-agent:1.0)"
        )
    return settings.kubernetes_image


def bootstrap_env(settings: Settings) -> List[Dict[str, Any]]:
    """``BOOTSTRAP_*`` variables for the pod: every setting that differs from its default
    and means something there (see MANIFEST_ONLY_SETTINGS), plus the agent type, its name,
    the jobs namespace and the image (also the flow runs' default image)."""
    env: List[Dict[str, Any]] = [
        {"name": env_name("agent_type"), "value": AgentType.kubernetes.value},
        {"name": env_name("agent_name"), "value": settings.agent_name or settings.kubernetes_name},
    ]
    namespace = env_name("kubernetes_namespace")
    if settings.kubernetes_namespace:
        env.append({"name": namespace, "value": settings.kubernetes_namespace})
    else:  # flow-run Jobs go to the agent's own namespace, wherever it is deployed
        env.append(
            {"name": namespace, "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}
        )
    env.append({"name": env_name("kubernetes_image"), "value": require_image(settings)})
    done = {"agent_name", "kubernetes_namespace", "kubernetes_image"}
    for name, value in changed(settings).items():
        if name in done or name in MANIFEST_ONLY_SETTINGS or name.startswith(_OTHER_AGENT_PREFIXES):
            continue
        env.append({"name": env_name(name), "value": encode(value)})
    return env


def check_manifest_settings(settings: Settings, extra_env: Mapping[str, str]) -> None:
    """Refuse what would put a secret inline in a manifest (they belong in Secrets)."""
    variables = {**settings.agent_env, **extra_env}
    hidden = sorted(key for key, value in variables.items() if flow_run_env_secrets({key: value}))
    if hidden:
        raise SettingsError(
            f"{', '.join(hidden)} look like secrets and would be written into the manifest "
            "in clear: put them in a Kubernetes Secret instead (kubernetes_job_env_secrets "
            "for flow runs, kubernetes_api_key_secret for the Prefect API key)"
        )


def deployment(
    settings: Settings, api_url: str, extra_env: Optional[Mapping[str, str]] = None
) -> Dict[str, Any]:
    env = agent_env(settings, api_url, extra_env)
    container = agent_container(settings, env)
    volumes, mounts = pod.agent_scratch(settings)
    if mounts:
        container["volumeMounts"] = mounts
    labels = pod.agent_labels(settings)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": pod.metadata(settings, settings.kubernetes_agent_namespace),
        "spec": {
            "replicas": 1,
            # One agent at a time: a rolling update would briefly run two.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": pod.selector_labels(settings)},
            "template": {
                "metadata": {"labels": dict(labels), **scrape_annotations(settings)},
                "spec": {
                    "serviceAccountName": settings.kubernetes_name,
                    "automountServiceAccountToken": True,  # the agent talks to the API
                    **pod.pull_secrets(settings),
                    **pod.agent_scheduling(settings),
                    "securityContext": pod.pod_security_context(settings),
                    "initContainers": [flow_run_check(settings, env)],
                    "containers": [container],
                    **({"volumes": volumes} if volumes else {}),
                },
            },
        },
    }


def agent_env(
    settings: Settings, api_url: str, extra_env: Optional[Mapping[str, str]]
) -> List[Dict[str, Any]]:
    """The agent container's variables: the server, its key's Secret, the operator's extra
    variables, then the bootstrap's settings."""
    env: List[Dict[str, Any]] = [
        {"name": "PREFECT__BACKEND", "value": "server"},
        {"name": "PREFECT__CLOUD__API", "value": api_url},
    ]
    if settings.kubernetes_api_key_secret:
        secret = {
            "name": settings.kubernetes_api_key_secret,
            "key": settings.kubernetes_api_key_secret_key,
        }
        env.append({"name": "PREFECT__CLOUD__API_KEY", "valueFrom": {"secretKeyRef": secret}})
    env += [{"name": name, "value": value} for name, value in sorted((extra_env or {}).items())]
    env += bootstrap_env(settings)
    return env


def agent_container(settings: Settings, env: List[Dict[str, Any]]) -> Dict[str, Any]:
    image = require_image(settings)
    port = agent_port(settings)
    # Start-up: extras, then up to wait_timeout for the server, before the health server is
    # up; the startup probe covers that (plus 10 minutes for EXTRA_* installs), so the
    # liveness probe only judges a running agent.
    startup_failures = math.ceil(settings.wait_timeout / 10) + 60
    ports = [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    if settings.metrics_port:
        ports.append({"name": "metrics", "containerPort": settings.metrics_port, "protocol": "TCP"})
    container: Dict[str, Any] = {
        "name": AGENT_CONTAINER,
        "image": image,
        **pod.pull_policy(settings),
        "env": env,
        **env_from(settings),
        "ports": ports,
        "startupProbe": pod.probe(pod.LIVENESS_PATH, "http", 10, startup_failures),
        "livenessProbe": pod.probe(pod.LIVENESS_PATH, "http", 30, 3),
        "readinessProbe": pod.probe(pod.READINESS_PATH, "http", 10, 3),
        "resources": pod.resources(
            {
                "cpu": settings.kubernetes_agent_cpu_request,
                "memory": settings.kubernetes_agent_memory_request,
            },
            {
                "cpu": settings.kubernetes_agent_cpu_limit,
                "memory": settings.kubernetes_agent_memory_limit,
            },
        ),
        "securityContext": pod.container_security_context(
            settings, read_only_root=settings.kubernetes_agent_read_only_root
        ),
    }
    return container


FLOW_RUN_CHECK = "flow-run-check"


def flow_run_check(settings: Settings, agent_env: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The init container that asks the server, from the flow runs' image and the agent's
    API variables, what a flow run asks first (bootstrap.flowrun.reach), retrying for the
    wait timeout: an agent whose flow runs could not reach the server never starts, and
    ``kubectl logs <pod> -c flow-run-check`` says why."""
    from bootstrap.flowrun.reach import PROBE, RETRY_ENV

    api = [item for item in agent_env if item["name"].startswith("PREFECT__CLOUD__API")]
    env = [*api, {"name": RETRY_ENV, "value": str(settings.wait_timeout)}]
    return {
        "name": FLOW_RUN_CHECK,
        "image": require_image(settings),
        **pod.pull_policy(settings),
        "command": ["python", "-c", PROBE],
        "env": env,
        **env_from(settings),
        "resources": pod.resources({"cpu": "50m", "memory": "64Mi"}, {"memory": "256Mi"}),
        "securityContext": pod.container_security_context(settings, read_only_root=True),
    }


def env_from(settings: Settings) -> Dict[str, Any]:
    """The agent's variables from Secrets and ConfigMaps (kubernetes_agent_env_from)."""
    sources = [env_from_entry(item) for item in settings.kubernetes_agent_env_from]
    return {"envFrom": sources} if sources else {}


def scrape_annotations(settings: Settings) -> Dict[str, Any]:
    """The usual ``prometheus.io/*`` annotations, when the agent serves metrics."""
    if not settings.metrics_port:
        return {}
    return {
        "annotations": {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(settings.metrics_port),
            "prometheus.io/path": "/metrics",
        }
    }


def manifests(
    settings: Settings, api_url: str, extra_env: Optional[Mapping[str, str]] = None
) -> List[Dict[str, Any]]:
    """ServiceAccount, Role, RoleBinding, Deployment and, if asked for, a NetworkPolicy (in
    the order to apply them)."""
    extra_env = dict(extra_env or {})
    require_image(settings)
    agent_port(settings)
    check_manifest_settings(settings, extra_env)
    objects = [
        access.service_account(settings),
        access.role(settings),
        access.role_binding(settings),
        deployment(settings, api_url, extra_env),
    ]
    if settings.kubernetes_network_policy:
        objects.append(access.network_policy(settings))
    return objects


def for_environment(
    settings: Settings, environ: Mapping[str, str], extra_env: Mapping[str, str]
) -> Tuple[List[Dict[str, Any]], List[str]]:
    """``kubernetes manifest``: the manifests for the API URL this environment (or the
    kubernetes_prefect_api setting) gives, and warnings about what the operator may have
    missed."""
    for name in extra_env:
        if not is_env_name(name) or name.startswith(ENV_PREFIX):
            raise SettingsError(
                f"--env {name}=...: not a variable name, or a BOOTSTRAP_* setting (set those "
                "as settings)"
            )
    api = resolve_api(environ)
    api_url = settings.kubernetes_prefect_api or api.url
    if url_credentials([api_url]):
        raise SettingsError(
            f"the Prefect API URL {redact_url(api_url)} carries credentials, which would be "
            "written into the manifest in clear: give the pod a URL without them (and the "
            "key through kubernetes_api_key_secret)"
        )
    objects = manifests(settings, api_url, extra_env)
    warnings = [warning for warning in [api_url_warning(api_url)] if warning]
    if api.api_key and not settings.kubernetes_api_key_secret:
        warnings.append(
            "PREFECT__CLOUD__API_KEY is set here but is not written into the manifests: "
            "store it in a Secret and set kubernetes_api_key_secret"
        )
    return objects, warnings


def api_url_warning(api_url: str) -> Optional[str]:
    host = urlsplit(api_url).hostname or ""
    if host in _LOCAL_HOSTS or host.startswith("127."):
        return (
            f"the Prefect API URL {api_url} points at the pod itself inside the cluster: "
            "set kubernetes_prefect_api to the server's in-cluster address "
            "(e.g. http://prefect-apollo.prefect:4200/graphql)"
        )
    return None


def dump(objects: List[Dict[str, Any]]) -> str:
    """A multi-document YAML stream."""
    return yaml.safe_dump_all(objects, sort_keys=False, explicit_start=True)
