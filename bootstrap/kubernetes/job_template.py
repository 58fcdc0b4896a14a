"""The flow-run Job template the Kubernetes agent gets with ``--job-template``.

The one place that decides which template the agent uses: the user's own
(``kubernetes_job_template``, used as it is, the ``kubernetes_job_*`` settings then do not
apply), else one rendered from the settings (:func:`job_template`), written to a file in a
directory private to the runtime user just before the agent starts.

How prefect 1.2.4 uses a template (``KubernetesAgent.generate_job_spec``):

- the *first* container is the flow's (named ``flow`` here, as in prefect's default);
  the agent sets its ``image`` (the flow's run config or storage image, else the template's),
  ``args`` (``prefect execute flow-run``, no ``command``: the image's entrypoint runs), and
  puts its own variables in front of the template's ``env``;
- ``resources.requests`` / ``resources.limits`` (the ``kubernetes_job_*`` settings, the
  limits defaulting to the ``flow_run_max_*`` ceilings) are kept; a ``KubernetesRun``'s
  ``cpu_request``, ``cpu_limit``, ``memory_request``, ``memory_limit`` replace one key
  each when set;
- ``serviceAccountName`` / ``imagePullSecrets``: the agent's ``--service-account-name`` /
  ``--image-pull-secrets`` (the same settings) or the run config's replace them;
- labels, ``securityContext``, ``envFrom``, ``volumes`` and ``volumeMounts``,
  ``nodeSelector``, ``tolerations``, ``affinity`` and ``priorityClassName`` are left as
  they are; the agent adds its ``prefect.io/*`` labels and a ``restartPolicy`` of ``Never``
  if there is none. (A ``KubernetesRun`` with its own ``job_template`` replaces all this.)
- ``backoffLimit: 0``: a failed pod is not retried (Kubernetes' default, 6, reruns the
  flow), and ``ttlSecondsAfterFinished`` (``kubernetes_job_ttl_seconds``) removes finished
  Jobs the agent did not delete.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

import yaml

from bootstrap.kubernetes import pod
from bootstrap.settings import AgentType, Settings
from bootstrap.util import rundir
from bootstrap.util.errors import PreflightError

FLOW_CONTAINER = "flow"
FILE_NAME = "job-template.yaml"


def job_template(settings: Settings) -> Dict[str, Any]:
    """The Job template rendered from the settings (see the module doc)."""
    labels = pod.flow_run_labels(settings)
    container: Dict[str, Any] = {"name": FLOW_CONTAINER}
    if settings.kubernetes_image:
        container["image"] = settings.kubernetes_image
    container.update(pod.pull_policy(settings))
    if settings.kubernetes_job_env_secrets:
        container["envFrom"] = [
            {"secretRef": {"name": name}} for name in settings.kubernetes_job_env_secrets
        ]
    container["resources"] = pod.resources(
        {
            "cpu": settings.kubernetes_job_cpu_request,
            "memory": settings.kubernetes_job_memory_request,
        },
        pod.flow_run_limits(settings),
    )
    container["securityContext"] = pod.container_security_context(settings)
    volumes, mounts = pod.job_volumes(settings)
    if mounts:
        container["volumeMounts"] = mounts

    pod_spec: Dict[str, Any] = {"restartPolicy": "Never"}
    if settings.kubernetes_service_account_name:
        pod_spec["serviceAccountName"] = settings.kubernetes_service_account_name
    pod_spec.update(pod.pull_secrets(settings))
    pod_spec.update(pod.job_scheduling(settings))
    pod_spec["securityContext"] = pod.pod_security_context(settings)
    pod_spec["containers"] = [container]
    if volumes:
        pod_spec["volumes"] = volumes

    metadata: Dict[str, Any] = {"labels": dict(labels)}
    if settings.kubernetes_namespace:
        metadata["namespace"] = settings.kubernetes_namespace
    # A failed pod is not retried (Kubernetes' default is 6 times, each a rerun of the flow);
    # a finished Job goes after the TTL, with its pod and logs.
    spec: Dict[str, Any] = {"backoffLimit": 0}
    if settings.kubernetes_job_ttl_seconds is not None:
        spec["ttlSecondsAfterFinished"] = settings.kubernetes_job_ttl_seconds
    spec["template"] = {"metadata": {"labels": dict(labels)}, "spec": pod_spec}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": spec}


@dataclass(frozen=True)
class TemplateFile:
    """What the agent's ``--job-template`` names, and the text to write there first (None:
    the user's own template, read as it is)."""

    path: str
    text: Optional[str] = None


def choose(settings: Settings, directory: Optional[str] = None) -> Optional[TemplateFile]:
    """The template for this agent: None unless it is a Kubernetes agent; the user's own if
    set; else the rendered one, to be written to ``directory`` (default: the run directory,
    :mod:`bootstrap.util.rundir`)."""
    if settings.agent_type is not AgentType.kubernetes:
        return None
    if settings.kubernetes_job_template:
        return TemplateFile(settings.kubernetes_job_template)
    directory = directory or str(rundir.run_dir())
    text = yaml.safe_dump(job_template(settings), sort_keys=False)
    return TemplateFile(str(Path(directory) / FILE_NAME), text)


def write(template: TemplateFile) -> None:
    """Write a rendered template (atomically, in a directory only this user can use)."""
    if template.text is None:
        return
    path = Path(template.path)
    try:
        directory = rundir.ensure_run_dir({rundir.RUN_DIR_ENV: str(path.parent)})
    except rundir.RunDirError as exc:
        raise PreflightError(f"cannot write the flow-run Job template: {exc}") from None
    rundir.write_file(directory, path.name, template.text)
