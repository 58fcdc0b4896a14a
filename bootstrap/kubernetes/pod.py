"""Pieces shared by the agent's pod and the flow-run pods: labels, security contexts,
resources, image pull settings, probes. Pure: settings in, plain dicts out."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from bootstrap.settings import Settings

MANAGED_BY = "prefect-agent-bootstrap"
LIVENESS_PATH = "/api/health"  # the poll loop and the engine are alive (bootstrap.launcher)
READINESS_PATH = "/api/ready"  # registered, and the last poll succeeded


def selector_labels(settings: Settings) -> Dict[str, str]:
    return {
        "app.kubernetes.io/name": "prefect-agent",
        "app.kubernetes.io/instance": settings.kubernetes_name,
    }


def agent_labels(settings: Settings) -> Dict[str, str]:
    return {
        **settings.kubernetes_labels,
        **selector_labels(settings),
        "app.kubernetes.io/component": "agent",
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def flow_run_labels(settings: Settings) -> Dict[str, str]:
    return {
        **settings.kubernetes_labels,
        "app.kubernetes.io/name": "prefect-flow-run",
        "app.kubernetes.io/instance": settings.kubernetes_name,
        "app.kubernetes.io/component": "flow-run",
        "app.kubernetes.io/managed-by": "prefect-agent",
    }


def metadata(settings: Settings, namespace: str) -> Dict[str, Any]:
    """An agent object's metadata: its name, namespace and labels."""
    return {
        "name": settings.kubernetes_name,
        "namespace": namespace,
        "labels": agent_labels(settings),
    }


def resources(requests: Mapping[str, Optional[str]], limits: Mapping[str, Optional[str]]):
    """``resources`` of a container; unset quantities are left out."""
    out: Dict[str, Dict[str, str]] = {}
    for key, values in (("requests", requests), ("limits", limits)):
        given = {name: value for name, value in values.items() if value is not None}
        if given:
            out[key] = given
    return out


def pod_security_context(settings: Settings) -> Dict[str, Any]:
    """Pod level: the image's USER is root (for the Docker socket), so set the uid here."""
    return {
        "runAsNonRoot": True,
        "runAsUser": settings.kubernetes_run_as_user,
        "runAsGroup": settings.kubernetes_run_as_group,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context(settings: Settings) -> Dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
        "runAsNonRoot": True,
        "runAsUser": settings.kubernetes_run_as_user,
        "runAsGroup": settings.kubernetes_run_as_group,
    }


def pull_policy(settings: Settings) -> Dict[str, str]:
    policy = settings.kubernetes_image_pull_policy
    return {"imagePullPolicy": policy.value} if policy else {}


def pull_secrets(settings: Settings) -> Dict[str, Any]:
    secrets = settings.kubernetes_image_pull_secrets
    return {"imagePullSecrets": [{"name": name} for name in secrets]} if secrets else {}


def probe(path: str, port_name: str, period: int, failures: int) -> Dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": port_name},
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    }
