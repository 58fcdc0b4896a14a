"""Kubernetes: the agent's manifests and the flow-run Job template, rendered from settings.

Everything here is pure (settings in, plain dicts out) except :func:`write_job_template`.

``prefect-agent-bootstrap kubernetes manifest`` prints :func:`manifests`: a ServiceAccount,
a Role and RoleBinding with exactly what prefect 1.2.4's ``KubernetesAgent`` calls, and a
Deployment running this image with its own entrypoint (extras, tenant, projects happen in
the pod too) and the bootstrap settings as ``BOOTSTRAP_*`` variables.

In the pod, ``prefect-agent-bootstrap run`` renders :func:`job_template` from the same
settings, writes it to a file and starts ``prefect agent kubernetes start --job-template
FILE``. How prefect 1.2.4 uses that template (``KubernetesAgent.generate_job_spec``):

- the *first* container is the flow's (named ``flow`` here, as in prefect's default);
  the agent sets its ``image`` (the flow's run config or storage image, else the template's),
  ``args`` (``prefect execute flow-run``, no ``command``: the image's entrypoint runs), and
  puts its own variables in front of the template's ``env``;
- ``resources.requests`` / ``resources.limits`` are kept; a ``KubernetesRun``'s
  ``cpu_request``, ``cpu_limit``, ``memory_request``, ``memory_limit`` replace one key
  each when set;
- ``serviceAccountName`` / ``imagePullSecrets``: the agent's ``--service-account-name`` /
  ``--image-pull-secrets`` (the same settings) or the run config's replace them;
- labels, ``securityContext`` and ``envFrom`` are left as they are; the agent adds its
  ``prefect.io/*`` labels and a ``restartPolicy`` of ``Never`` if there is none.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from typing import Any, Dict, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit

import yaml
from slugify import slugify

from bootstrap.errors import SettingsError
from bootstrap.settings import AgentType, Settings, env_name, is_secret_name

FLOW_CONTAINER = "flow"
AGENT_CONTAINER = "agent"
HEALTH_PATH = "/api/health"
MANAGED_BY = "prefect-agent-bootstrap"

# What prefect 1.2.4's KubernetesAgent (prefect/agent/kubernetes/agent.py) calls, and so
# the Role it needs -- nothing else (tests/bootstrap/test_kubernetes_rbac.py re-derives this
# from that file's source and the kubernetes client's request paths):
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
    }
)
# Docker and local agent settings mean nothing in the pod.
_OTHER_AGENT_PREFIXES = ("docker_", "local_")
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "0.0.0.0")  # noqa: S104 - names, not binds


# Labels -----------------------------------------------------------------------------------


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


# Pieces shared by the agent pod and flow-run pods ------------------------------------------


def _resources(requests: Mapping[str, Optional[str]], limits: Mapping[str, Optional[str]]):
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


def _pull_policy(settings: Settings) -> Dict[str, str]:
    policy = settings.kubernetes_image_pull_policy
    return {"imagePullPolicy": policy.value} if policy else {}


def _pull_secrets(settings: Settings) -> Dict[str, Any]:
    secrets = settings.kubernetes_image_pull_secrets
    return {"imagePullSecrets": [{"name": name} for name in secrets]} if secrets else {}


# The flow-run Job template ------------------------------------------------------------------


def job_template(settings: Settings) -> Dict[str, Any]:
    """The Job template handed to the agent with ``--job-template`` (see the module doc)."""
    labels = flow_run_labels(settings)
    container: Dict[str, Any] = {"name": FLOW_CONTAINER}
    if settings.kubernetes_image:
        container["image"] = settings.kubernetes_image
    container.update(_pull_policy(settings))
    if settings.kubernetes_job_env_secrets:
        container["envFrom"] = [
            {"secretRef": {"name": name}} for name in settings.kubernetes_job_env_secrets
        ]
    container["resources"] = _resources(
        {
            "cpu": settings.kubernetes_job_cpu_request,
            "memory": settings.kubernetes_job_memory_request,
        },
        {"cpu": settings.kubernetes_job_cpu_limit, "memory": settings.kubernetes_job_memory_limit},
    )
    container["securityContext"] = container_security_context(settings)

    pod_spec: Dict[str, Any] = {"restartPolicy": "Never"}
    if settings.kubernetes_service_account_name:
        pod_spec["serviceAccountName"] = settings.kubernetes_service_account_name
    pod_spec.update(_pull_secrets(settings))
    pod_spec["securityContext"] = pod_security_context(settings)
    pod_spec["containers"] = [container]

    metadata: Dict[str, Any] = {"labels": dict(labels)}
    if settings.kubernetes_namespace:
        metadata["namespace"] = settings.kubernetes_namespace
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {"template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec}},
    }


def write_job_template(settings: Settings, directory: Optional[str] = None) -> str:
    """Write :func:`job_template` to a new file (kept: the agent reads it for every run)."""
    fd, path = tempfile.mkstemp(prefix="prefect-job-template-", suffix=".yaml", dir=directory)
    with os.fdopen(fd, "w") as handle:
        yaml.safe_dump(job_template(settings), handle, sort_keys=False)
    return path


def prepare_job_template(settings: Settings, directory: Optional[str] = None) -> Optional[str]:
    """For the Kubernetes agent, the ``--job-template`` to pass, written from the settings.

    ``None`` for other agents, and when ``kubernetes_job_template`` names the user's own
    template (which is then used as it is: the kubernetes_job_* settings do not apply).
    """
    if settings.agent_type is not AgentType.kubernetes or settings.kubernetes_job_template:
        return None
    return write_job_template(settings, directory)


# The manifests ------------------------------------------------------------------------------


def agent_port(settings: Settings) -> int:
    """The health server's port; the kubelet probes the pod IP, so it must bind all of them."""
    parts = urlsplit(settings.agent_address)
    if parts.port is None or parts.hostname not in (None, "", "0.0.0.0"):  # noqa: S104
        raise SettingsError(
            f"invalid setting agent_address={settings.agent_address!r}: in Kubernetes the "
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


def _env_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=isinstance(value, dict))
    return str(getattr(value, "value", value))  # enums


def bootstrap_env(settings: Settings) -> List[Dict[str, Any]]:
    """``BOOTSTRAP_*`` variables for the pod: every setting that differs from its default
    and means something there (see MANIFEST_ONLY_SETTINGS), plus the agent type, its name,
    the jobs namespace and the image (also the flow runs' default image)."""
    env: List[Dict[str, Any]] = [
        {"name": env_name("agent_type"), "value": AgentType.kubernetes.value},
        {"name": env_name("agent_name"), "value": settings.agent_name or settings.kubernetes_name},
    ]
    if settings.kubernetes_namespace:
        env.append(
            {"name": env_name("kubernetes_namespace"), "value": settings.kubernetes_namespace}
        )
    else:  # flow-run Jobs go to the agent's own namespace, wherever it is deployed
        env.append(
            {
                "name": env_name("kubernetes_namespace"),
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
            }
        )
    env.append({"name": env_name("kubernetes_image"), "value": require_image(settings)})
    done = {"agent_name", "kubernetes_namespace", "kubernetes_image"}
    values = settings.dict()
    for name, field in Settings.__fields__.items():
        if name in done or name in MANIFEST_ONLY_SETTINGS or name.startswith(_OTHER_AGENT_PREFIXES):
            continue
        value = values[name]
        if value == field.get_default():
            continue
        if name == "tenant_slug" and value == slugify(settings.tenant):
            continue  # derived from the tenant name: the pod derives it too
        if name == "projects":
            value = [{k: v for k, v in item.items() if v is not None} for item in value]
        env.append({"name": env_name(name), "value": _env_value(value)})
    return env


def check_manifest_settings(settings: Settings, extra_env: Mapping[str, str]) -> None:
    """Refuse what would put a secret inline in a manifest (they belong in Secrets)."""
    hidden = sorted(key for key in settings.agent_env if is_secret_name(key))
    hidden += sorted(key for key in extra_env if is_secret_name(key))
    if hidden:
        raise SettingsError(
            f"{', '.join(hidden)} look like secrets and would be written into the manifest "
            "in clear: put them in a Kubernetes Secret instead (kubernetes_job_env_secrets "
            "for flow runs, kubernetes_api_key_secret for the Prefect API key)"
        )


def _probe(port_name: str, period: int, failures: int) -> Dict[str, Any]:
    return {
        "httpGet": {"path": HEALTH_PATH, "port": port_name},
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    }


def deployment(
    settings: Settings, api_url: str, extra_env: Optional[Mapping[str, str]] = None
) -> Dict[str, Any]:
    image = require_image(settings)
    port = agent_port(settings)
    env = [
        {"name": "PREFECT__BACKEND", "value": "server"},
        {"name": "PREFECT__CLOUD__API", "value": api_url},
    ]
    if settings.kubernetes_api_key_secret:
        env.append(
            {
                "name": "PREFECT__CLOUD__API_KEY",
                "valueFrom": {
                    "secretKeyRef": {
                        "name": settings.kubernetes_api_key_secret,
                        "key": settings.kubernetes_api_key_secret_key,
                    }
                },
            }
        )
    env += [{"name": name, "value": value} for name, value in sorted((extra_env or {}).items())]
    env += bootstrap_env(settings)

    # Start-up: extras, then up to wait_timeout for the server, before the health server is
    # up; the startup probe covers that (plus 10 minutes for EXTRA_* installs), so the
    # liveness probe only judges a running agent.
    startup_failures = math.ceil(settings.wait_timeout / 10) + 60
    container: Dict[str, Any] = {
        "name": AGENT_CONTAINER,
        "image": image,
        **_pull_policy(settings),
        "env": env,
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "startupProbe": _probe("http", 10, startup_failures),
        "livenessProbe": _probe("http", 30, 3),
        "readinessProbe": _probe("http", 10, 3),
        "resources": _resources(
            {
                "cpu": settings.kubernetes_agent_cpu_request,
                "memory": settings.kubernetes_agent_memory_request,
            },
            {
                "cpu": settings.kubernetes_agent_cpu_limit,
                "memory": settings.kubernetes_agent_memory_limit,
            },
        ),
        "securityContext": container_security_context(settings),
    }
    labels = agent_labels(settings)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": settings.kubernetes_name,
            "namespace": settings.kubernetes_agent_namespace,
            "labels": labels,
        },
        "spec": {
            "replicas": 1,
            # One agent at a time: a rolling update would briefly run two.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector_labels(settings)},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "serviceAccountName": settings.kubernetes_name,
                    "automountServiceAccountToken": True,  # the agent talks to the API
                    **_pull_secrets(settings),
                    "securityContext": pod_security_context(settings),
                    "containers": [container],
                },
            },
        },
    }


def jobs_namespace(settings: Settings) -> str:
    return settings.kubernetes_namespace or settings.kubernetes_agent_namespace


def service_account(settings: Settings) -> Dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": settings.kubernetes_name,
            "namespace": settings.kubernetes_agent_namespace,
            "labels": agent_labels(settings),
        },
    }


def role(settings: Settings) -> Dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {
            "name": settings.kubernetes_name,
            "namespace": jobs_namespace(settings),
            "labels": agent_labels(settings),
        },
        "rules": [{key: list(values) for key, values in rule.items()} for rule in AGENT_RBAC_RULES],
    }


def role_binding(settings: Settings) -> Dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {
            "name": settings.kubernetes_name,
            "namespace": jobs_namespace(settings),
            "labels": agent_labels(settings),
        },
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


def manifests(
    settings: Settings, api_url: str, extra_env: Optional[Mapping[str, str]] = None
) -> List[Dict[str, Any]]:
    """ServiceAccount, Role, RoleBinding, Deployment (in the order to apply them)."""
    extra_env = dict(extra_env or {})
    require_image(settings)
    agent_port(settings)
    check_manifest_settings(settings, extra_env)
    return [
        service_account(settings),
        role(settings),
        role_binding(settings),
        deployment(settings, api_url, extra_env),
    ]


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


# A kustomize base ----------------------------------------------------------------------------

KUSTOMIZE_FILES = {
    "ServiceAccount": "serviceaccount.yaml",
    "Role": "role.yaml",
    "RoleBinding": "rolebinding.yaml",
    "Deployment": "deployment.yaml",
}


KUSTOMIZE_HEADER = (
    "# Generated by `prefect-agent-bootstrap kubernetes manifest --output-dir DIR`: do not\n"
    "# edit, change the settings and regenerate (README, section Kubernetes).\n"
)


def kustomize_base(objects: List[Dict[str, Any]]) -> Dict[str, str]:
    """File name -> text of a kustomize base holding ``objects`` (``kubectl apply -k DIR``).

    The image appears twice in the Deployment: as the container's image and as
    BOOTSTRAP_KUBERNETES_IMAGE (the flow runs' default image). A ``replacements`` entry
    copies the first into the second, so ``kustomize edit set image`` in this directory
    changes both.
    """
    header = KUSTOMIZE_HEADER
    files: Dict[str, str] = {}
    for obj in objects:
        files[KUSTOMIZE_FILES[obj["kind"]]] = header + yaml.safe_dump(obj, sort_keys=False)
    agent = next(obj for obj in objects if obj["kind"] == "Deployment")
    container = agent["spec"]["template"]["spec"]["containers"][0]
    image = container["image"]
    name, digest = image.split("@", 1) if "@" in image else (image, None)
    slash, colon = name.rfind("/"), name.rfind(":")
    name, tag = (name[:colon], name[colon + 1 :]) if colon > slash else (name, None)
    image_entry: Dict[str, str] = {"name": name}
    if tag:
        image_entry["newTag"] = tag
    if digest:
        image_entry["digest"] = digest
    target = f"spec.template.spec.containers.[name={container['name']}]"
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [KUSTOMIZE_FILES[obj["kind"]] for obj in objects],
        "images": [image_entry],
        "replacements": [
            {
                "source": {
                    "kind": "Deployment",
                    "name": agent["metadata"]["name"],
                    "fieldPath": f"{target}.image",
                },
                "targets": [
                    {
                        "select": {"kind": "Deployment", "name": agent["metadata"]["name"]},
                        "fieldPaths": [f"{target}.env.[name={env_name('kubernetes_image')}].value"],
                    }
                ],
            }
        ],
    }
    files["kustomization.yaml"] = header + yaml.safe_dump(kustomization, sort_keys=False)
    return files
