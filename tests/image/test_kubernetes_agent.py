"""The image as a Kubernetes agent, started the way the manifests start it (uid 1000, all
capabilities dropped, no privilege escalation), against the Prefect API double.

Without a cluster the bootstrap must stop with a clear message, after the tenant and
projects exist. With a stand-in for the Kubernetes API (plain HTTP on 127.0.0.1, named by a
kubeconfig), the real agent in the image submits a flow run as a Job: the Job carries the
template's limits and security context, and every request the agent sends is one the Role
of the manifests grants.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import List, Optional, Tuple

import kubernetes_validate
import prefect
import pytest
import yaml
from prefect.run_configs import KubernetesRun
from prefect.storage import Local

from bootstrap.kubernetes import access
from prefect_api_double import registration
from testbed.net import free_port

pytestmark = pytest.mark.docker

AGENT_USER = "1000"
# The manifests' container securityContext, in Docker terms.
RESTRICTED = {"user": AGENT_USER, "cap_drop": ["ALL"], "security_opt": ["no-new-privileges:true"]}
NAMESPACE = "lume-flows"


def test_without_a_cluster_it_fails_clearly_after_tenant_and_projects(
    containers, dev_image: str, prefect_api
) -> None:
    result = containers.run_to_end(
        dev_image,
        environment={
            "PREFECT__CLOUD__API": prefect_api.url,
            "BOOTSTRAP_AGENT_TYPE": "kubernetes",
            "BOOTSTRAP_TENANT": "LUME",
            "BOOTSTRAP_PROJECTS": "models,simulations",
            "BOOTSTRAP_KUBERNETES_IMAGE": "prefect-agent:dev",
            "BOOTSTRAP_WAIT_TIMEOUT": "30",
        },
        timeout=120,
        **RESTRICTED,
    )
    assert result.exit_code == 5, result  # PreflightError
    output = result.output
    assert "cannot reach a cluster" in output
    assert "no in-cluster configuration" in output
    assert "KUBERNETES_SERVICE_HOST" in output
    assert "/home/prefect/.kube/config not found" in output  # the kubeconfig it looked for
    assert "Traceback" not in output
    assert "running as root" not in output  # started non-root: nothing to drop
    # ... and only after the tenant and its projects were made
    (tenant,) = prefect_api.tenants()
    assert tenant["slug"] == "lume"
    names = {project["name"] for project in prefect_api.projects(tenant["id"])}
    assert names == {"models", "simulations"}
    assert "register_agent" not in prefect_api.fields_called()


# A stand-in for the Kubernetes API -------------------------------------------------------------


class FakeKubernetesApi:
    """Records every request; answers the ones prefect's KubernetesAgent sends.

    At start the namespace holds two Jobs of an earlier run: one still pending (so the
    agent lists its pods, finds a Pending pod and lists its events) and one that succeeded
    (so the agent deletes it). Jobs the agent creates are kept and answered back.
    """

    def __init__(self, flow_run_id: str, token: str) -> None:
        self.token = token
        self.requests: List[Tuple[str, str]] = []
        self.unauthorized = 0
        self.created: List[dict] = []
        self.old_jobs = [
            self._job("prefect-job-pending", "pend0001", flow_run_id, {"active": 1}),
            self._job("prefect-job-done", "done0001", flow_run_id, {"succeeded": 1}),
        ]
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format, *args):  # quiet
                pass

            def do_GET(self):
                api.handle(self)

            def do_POST(self):
                api.handle(self)

            def do_DELETE(self):
                api.handle(self)

            def do_PUT(self):
                api.handle(self)

            def do_PATCH(self):
                api.handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @staticmethod
    def _job(name: str, identifier: str, flow_run_id: str, status: dict) -> dict:
        labels = {"prefect.io/identifier": identifier, "prefect.io/flow_run_id": flow_run_id}
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
            "spec": {"template": {"spec": {"containers": [{"name": "flow", "image": "x"}]}}},
            "status": status,
        }

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FakeKubernetesApi:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        path = request.path.split("?", 1)[0]
        self.requests.append((request.command, path))
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            self.unauthorized += 1
        length = int(request.headers.get("Content-Length") or 0)
        body = json.loads(request.rfile.read(length)) if length else None
        jobs = f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs"
        core = f"/api/v1/namespaces/{NAMESPACE}"
        if request.command == "POST" and path == jobs:
            body["metadata"].update(namespace=NAMESPACE, uid=str(uuid.uuid4()))
            self.created.append(body)
            return self.reply(request, 201, {**body, "status": {}})
        if request.command == "GET" and path == jobs:
            return self.reply(request, 200, self._list("batch/v1", "JobList", self.old_jobs))
        if request.command == "DELETE" and path.startswith(jobs + "/"):
            status = {"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Success"}
            return self.reply(request, 200, status)
        if request.command == "GET" and path == f"{core}/pods":
            return self.reply(request, 200, self._list("v1", "PodList", [self._pending_pod()]))
        if request.command == "GET" and path == f"{core}/events":
            return self.reply(request, 200, self._list("v1", "EventList", []))
        self.reply(request, 404, {"kind": "Status", "apiVersion": "v1", "code": 404})

    @staticmethod
    def _list(api_version: str, kind: str, items: List[dict]) -> dict:
        return {"apiVersion": api_version, "kind": kind, "metadata": {}, "items": items}

    @staticmethod
    def _pending_pod() -> dict:
        waiting = {"waiting": {"reason": "ContainerCreating"}}
        status = {"name": "flow", "image": "x", "imageID": "", "ready": False, "restartCount": 0}
        return {
            "metadata": {"name": "prefect-job-pending-abcde", "namespace": NAMESPACE},
            "status": {"phase": "Pending", "containerStatuses": [{**status, "state": waiting}]},
        }

    @staticmethod
    def reply(request: BaseHTTPRequestHandler, code: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        request.send_response(code)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)


def permission(method: str, path: str) -> Tuple[str, str, str]:
    """(apiGroup, resource, verb) of a namespaced request, as Kubernetes' RequestInfo."""
    match = re.match(r"^/(?:api/v1|apis/([^/]+)/[^/]+)/namespaces/[^/]+/([^/]+)(?:/([^/]+))?", path)
    assert match, path
    group, resource, name = match.group(1) or "", match.group(2), match.group(3)
    verbs = {"POST": "create", "GET": "get" if name else "list", "DELETE": "delete"}
    return group, resource, verbs.get(method, method.lower())


def wait_until(check, timeout: float, what: str, logs) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}; agent output:\n{logs()}")


def health(port: int) -> Optional[int]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as resp:
            return resp.status
    except OSError:
        return None


@pytest.mark.e2e
def test_agent_in_the_image_submits_a_job_with_the_limits_and_only_needs_the_role(
    containers, dev_image: str, prefect_api, tmp_path: Path
) -> None:
    tenant_id = prefect_api.create_tenant("LUME", slug="lume")
    flow = prefect.Flow("k8s-job", tasks=[prefect.Task(name="noop")])
    # no hostname label (Local storage's default): the run's labels must be the agent's
    flow.storage = Local(
        path="/opt/flows/k8s_job.py", stored_as_script=True, add_default_labels=False
    )
    flow.run_config = KubernetesRun(labels=["k8s"], cpu_request="250m")
    flow_id = registration.register_flow(
        flow, prefect_api.url, "models", tenant_id, create_project_if_missing=True, build=False
    )
    flow_run_id = registration.create_flow_run(prefect_api.url, flow_id, tenant_id=tenant_id)

    token = uuid.uuid4().hex
    kube = FakeKubernetesApi(flow_run_id, token).start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": kube.url}}],
                "users": [{"name": "agent", "user": {"token": token}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "agent"}}],
                "current-context": "fake",
            }
        )
    )
    kubeconfig.chmod(0o644)
    port = free_port()
    try:
        container = containers.run(
            dev_image,
            environment={
                "PREFECT__CLOUD__API": prefect_api.url,
                "KUBECONFIG": "/etc/prefect-agent/kubeconfig",
                "BOOTSTRAP_AGENT_TYPE": "kubernetes",
                "BOOTSTRAP_AGENT_ADDRESS": f"http://:{port}",
                "BOOTSTRAP_AGENT_LABELS": "k8s",
                "BOOTSTRAP_TENANT": "LUME",
                "BOOTSTRAP_PROJECTS": "models",
                "BOOTSTRAP_KUBERNETES_NAMESPACE": NAMESPACE,
                "BOOTSTRAP_KUBERNETES_IMAGE": "registry.example.org/lume/prefect-agent:1",
                "BOOTSTRAP_KUBERNETES_JOB_CPU_LIMIT": "2",
                "BOOTSTRAP_KUBERNETES_JOB_MEMORY_REQUEST": "1Gi",
                "BOOTSTRAP_KUBERNETES_JOB_MEMORY_LIMIT": "3Gi",
                "BOOTSTRAP_KUBERNETES_LABELS": "team=lume",
            },
            volumes={str(kubeconfig): {"bind": "/etc/prefect-agent/kubeconfig", "mode": "ro"}},
            **RESTRICTED,
        )

        def logs() -> str:
            run = prefect_api.flow_run(flow_run_id) or {}
            return (
                container.logs().decode(errors="replace")[-4000:]
                + f"\nflow run: state {run.get('state')}, labels {run.get('labels')}"
                + f"\nKubernetes API requests: {kube.requests}"
            )

        wait_until(lambda: kube.created, 120, "the agent to create a Job", logs)
        needed = {
            ("batch", "jobs", "create"),
            ("batch", "jobs", "list"),
            ("batch", "jobs", "delete"),
            ("", "pods", "list"),
            ("", "events", "list"),
        }
        wait_until(
            lambda: {permission(*req) for req in kube.requests} >= needed,
            60,
            "the agent's first job-management heartbeat",
            logs,
        )
        wait_until(
            lambda: prefect_api.flow_run(flow_run_id)["state"] == "Submitted",
            30,
            "the flow run to be Submitted",
            logs,
        )
        # the probes' target, served by the agent as uid 1000
        wait_until(lambda: health(port) == 200, 30, "the agent's /api/health", logs)
        container.reload()
        assert container.status == "running"
        assert container.attrs["Config"]["User"] == AGENT_USER
    finally:
        kube.stop()

    # Every request the agent sent is granted by the manifests' Role, and was authenticated.
    granted = {
        (group, resource, verb)
        for rule in access.AGENT_RBAC_RULES
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    sent = {permission(*req) for req in kube.requests}
    assert sent <= granted, sorted(sent - granted)
    assert kube.unauthorized == 0

    # The Job: the template rendered from the settings, merged by prefect's agent.
    (job,) = kube.created
    assert job["metadata"]["labels"]["team"] == "lume"
    assert job["metadata"]["labels"]["prefect.io/flow_run_id"] == flow_run_id
    pod = job["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 1000
    (container_spec,) = pod["containers"]
    assert container_spec["name"] == "flow"
    assert container_spec["image"] == "registry.example.org/lume/prefect-agent:1"
    assert container_spec["args"] == ["prefect", "execute", "flow-run"]
    assert container_spec["resources"] == {
        "requests": {"cpu": "250m", "memory": "1Gi"},  # cpu_request: the KubernetesRun's
        "limits": {"cpu": "2", "memory": "3Gi"},
    }
    assert container_spec["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container_spec["securityContext"]["allowPrivilegeEscalation"] is False
    env = {item["name"]: item.get("value") for item in container_spec["env"]}
    assert env["PREFECT__CONTEXT__FLOW_RUN_ID"] == flow_run_id
    kubernetes_validate.validate(job, kubernetes_validate.latest_version(), strict=True)
