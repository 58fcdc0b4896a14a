"""Who the agent is in the cluster and what it may do: its ServiceAccount, the Role and
RoleBinding in the flow-run Jobs' namespace, and the NetworkPolicy around its pod. Pure."""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

from bootstrap.kubernetes import pod
from bootstrap.settings import Settings

# What prefect 1.2.4's KubernetesAgent (prefect/agent/kubernetes/agent.py) calls, and so
# the Role it needs -- nothing else (tests/bootstrap/kubernetes/test_rbac.py re-derives
# this from that file's source and the kubernetes client's request paths):
#   batch_client.create_namespaced_job   POST   .../jobs           deploy_flow
#   batch_client.list_namespaced_job     GET    .../jobs           manage_jobs (heartbeat)
#   batch_client.delete_namespaced_job   DELETE .../jobs/{name}    manage_jobs, finished jobs
#   core_client.list_namespaced_pod      GET    .../pods           manage_jobs: pull errors,
#                                                                  failed pods
#   core_client.list_namespaced_event    GET    .../events         manage_jobs: pending pods
# It reads job and pod status from those lists (no jobs/status) and never reads pod logs
# (no pods/log): flow-run logs reach the server from the flow-run process itself.
AGENT_RBAC_RULES: Tuple[Dict[str, List[str]], ...] = (
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "delete", "list"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["list"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
)


def jobs_namespace(settings: Settings) -> str:
    return settings.kubernetes_namespace or settings.kubernetes_agent_namespace


def network_policy(settings: Settings) -> Dict[str, Any]:
    """Ingress to the agent pod: none but the kubelet's probes (which NetworkPolicies do not
    govern: traffic from the pod's own node is always allowed) and, if given, pods of the
    monitoring namespace, on the agent's ports. Egress is not restricted: the agent must
    reach the Prefect Server and the Kubernetes API, wherever they are."""
    ports = [{"protocol": "TCP", "port": "http"}]
    if settings.metrics_port:
        ports.append({"protocol": "TCP", "port": "metrics"})
    ingress: List[Dict[str, Any]] = []
    if settings.kubernetes_monitoring_namespace:
        namespace = {"kubernetes.io/metadata.name": settings.kubernetes_monitoring_namespace}
        ingress.append(
            {"from": [{"namespaceSelector": {"matchLabels": namespace}}], "ports": ports}
        )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": pod.metadata(settings, settings.kubernetes_agent_namespace),
        "spec": {
            "podSelector": {"matchLabels": pod.selector_labels(settings)},
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    }


def service_account(settings: Settings) -> Dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": pod.metadata(settings, settings.kubernetes_agent_namespace),
    }


def role(settings: Settings) -> Dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": pod.metadata(settings, jobs_namespace(settings)),
        "rules": [{key: list(values) for key, values in rule.items()} for rule in AGENT_RBAC_RULES],
    }


def role_binding(settings: Settings) -> Dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": pod.metadata(settings, jobs_namespace(settings)),
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": settings.kubernetes_name,
        },
        "subjects": [
            {
                "kind": "ServiceAccount",
                "name": settings.kubernetes_name,
                "namespace": settings.kubernetes_agent_namespace,
            }
        ],
    }
