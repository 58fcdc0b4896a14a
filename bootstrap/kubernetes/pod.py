"""Pieces shared by the agent's pod and the flow-run pods: labels, security contexts,
resources, image pull settings, probes. Pure: settings in, plain dicts out."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from bootstrap.settings import Settings
from bootstrap.settings.kubernetes_pod_rules import parse_volume, volume_source

MANAGED_BY = "prefect-agent-bootstrap"
LIVENESS_PATH = "/api/health"  # the poll loop and the engine are alive (bootstrap.agent)
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


def kubernetes_bytes(docker_size: Optional[str]) -> Optional[str]:
    """A Docker size (``2g``) as a Kubernetes quantity (``2048Mi``)."""
    if docker_size is None:
        return None
    from bootstrap.util.docker_units import parse_bytes

    amount = parse_bytes(docker_size)
    return f"{amount // 2**20}Mi" if amount % 2**20 == 0 else str(amount)


def flow_run_limits(settings: Settings) -> Dict[str, Optional[str]]:
    """The flow container's limits: the Job settings, else the agent's ceilings (a run with
    no limit would be past them)."""
    cpus = settings.flow_run_max_cpus
    return {
        "cpu": settings.kubernetes_job_cpu_limit or (f"{cpus:g}" if cpus is not None else None),
        "memory": settings.kubernetes_job_memory_limit
        or kubernetes_bytes(settings.flow_run_max_memory),
    }


def pod_security_context(settings: Settings) -> Dict[str, Any]:
    """Pod level: the image's USER is root (for the Docker socket), so set the uid here."""
    return {
        "runAsNonRoot": True,
        "runAsUser": settings.kubernetes_run_as_user,
        "runAsGroup": settings.kubernetes_run_as_group,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context(settings: Settings, read_only_root: bool = False) -> Dict[str, Any]:
    context: Dict[str, Any] = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
        "runAsNonRoot": True,
        "runAsUser": settings.kubernetes_run_as_user,
        "runAsGroup": settings.kubernetes_run_as_group,
    }
    if read_only_root:
        context["readOnlyRootFilesystem"] = True
    return context


# What the agent writes on a read-only root (the image's own writable places), each an
# emptyDir with a size limit: name -> (mount path, sizeLimit).
AGENT_SCRATCH = {
    "tmp": ("/tmp", "1Gi"),  # noqa: S108 - the pod's own emptyDir; the run directory
    "cache": ("/var/cache/prefect-agent", "2Gi"),  # installers' caches
    "state": ("/var/lib/prefect-agent", "2Gi"),  # the extras overlay (EXTRA_PIP_PACKAGES)
    "home": ("/home/prefect", "256Mi"),  # ~/.prefect
}


def agent_scratch(settings: Settings) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """The agent pod's emptyDirs and their mounts, when its root is read-only."""
    if not settings.kubernetes_agent_read_only_root:
        return [], []
    volumes = [
        {"name": name, "emptyDir": {"sizeLimit": size}} for name, (_, size) in AGENT_SCRATCH.items()
    ]
    mounts = [{"name": name, "mountPath": path} for name, (path, _) in AGENT_SCRATCH.items()]
    return volumes, mounts


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


def scheduling(
    node_selector: Mapping[str, str],
    tolerations: Sequence[Mapping[str, Any]],
    affinity: Optional[Mapping[str, Any]],
    priority_class: Optional[str],
) -> Dict[str, Any]:
    """Where a pod may run: the pod spec's nodeSelector, tolerations, affinity and
    priorityClassName, those that are set."""
    spec: Dict[str, Any] = {}
    if node_selector:
        spec["nodeSelector"] = dict(node_selector)
    if tolerations:
        spec["tolerations"] = [dict(toleration) for toleration in tolerations]
    if affinity:
        spec["affinity"] = dict(affinity)
    if priority_class:
        spec["priorityClassName"] = priority_class
    return spec


def agent_scheduling(settings: Settings) -> Dict[str, Any]:
    return scheduling(
        settings.kubernetes_agent_node_selector,
        settings.kubernetes_agent_tolerations,
        settings.kubernetes_agent_affinity,
        settings.kubernetes_agent_priority_class,
    )


def job_scheduling(settings: Settings) -> Dict[str, Any]:
    return scheduling(
        settings.kubernetes_job_node_selector,
        settings.kubernetes_job_tolerations,
        settings.kubernetes_job_affinity,
        settings.kubernetes_job_priority_class,
    )


def job_volumes(settings: Settings) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """The flow-run pod's ``volumes`` and its container's ``volumeMounts``."""
    volumes: List[Dict[str, Any]] = []
    mounts: List[Dict[str, Any]] = []
    for index, item in enumerate(settings.kubernetes_job_volumes):
        spec = parse_volume(item)
        name = f"volume-{index}"
        volumes.append({"name": name, **volume_source(spec)})
        mount: Dict[str, Any] = {"name": name, "mountPath": spec.mount_path}
        if spec.read_only:
            mount["readOnly"] = True
        mounts.append(mount)
    return volumes, mounts
