"""bootstrap.agent.kubernetes_runs: why a flow-run Job cannot go on, decided on the
Kubernetes client's own objects (V1Job, V1Pod, CoreV1Event), deserialized from API answers
as the API server sends them (recorded shapes; no cluster here)."""

from __future__ import annotations

import datetime

import kubernetes
import pytest

from bootstrap.agent.kubernetes_runs import JOB_PREFIX, job_failure, job_name

RUN = "0c7e6c2e-1111-4222-8333-944455556666"
NAME = job_name(RUN)
CREATED = "2026-12-04T10:00:00Z"
NOW = datetime.datetime(2026, 12, 4, 10, 20, tzinfo=datetime.timezone.utc)


def load(data: dict, kind: str):
    """What the client's list_* calls return: the JSON deserialized into its model types."""
    return kubernetes.client.ApiClient()._ApiClient__deserialize(data, kind)


def job() -> kubernetes.client.V1Job:
    return load(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": NAME,
                "namespace": "prefect",
                "labels": {"prefect.io/flow_run_id": RUN, "prefect.io/identifier": "1a2b3c4d"},
                "creationTimestamp": CREATED,
            },
            "spec": {"backoffLimit": 0, "template": {"spec": {"containers": []}}},
            "status": {"active": 1, "startTime": CREATED},
        },
        "V1Job",
    )


def pod(phase: str, created: str = CREATED, container_state=None) -> kubernetes.client.V1Pod:
    status = {"phase": phase}
    if container_state is not None:
        status["containerStatuses"] = [
            {"name": "flow", "image": "prefect-agent:prod", "imageID": "", "ready": False,
             "restartCount": 0, "state": container_state}
        ]  # fmt: skip
    return load(
        {
            "metadata": {"name": f"{NAME}-x7k2p", "labels": {"job-name": NAME},
                         "creationTimestamp": created},
            "spec": {"containers": [{"name": "flow", "image": "prefect-agent:prod"}]},
            "status": status,
        },
        "V1Pod",
    )  # fmt: skip


def event(kind: str, name: str, reason: str, message: str) -> kubernetes.client.CoreV1Event:
    return load(
        {
            "metadata": {"name": f"{name}.17a", "namespace": "prefect",
                         "creationTimestamp": "2026-12-04T10:00:05Z"},
            "involvedObject": {"kind": kind, "name": name, "namespace": "prefect"},
            "reason": reason,
            "message": message,
            "type": "Warning",
            "lastTimestamp": "2026-12-04T10:00:05Z",
        },
        "CoreV1Event",
    )  # fmt: skip


def test_one_job_name_per_flow_run() -> None:
    assert job_name(RUN) == JOB_PREFIX + RUN
    assert len(job_name(RUN)) <= 63  # a DNS label


def test_a_job_that_cannot_create_its_pod_fails_the_run_with_the_event() -> None:
    quota = (
        'pods "prefect-job-x" is forbidden: exceeded quota: compute, requested: '
        "limits.memory=4Gi, used: limits.memory=8Gi, limited: limits.memory=8Gi"
    )
    events = [event("Job", NAME, "FailedCreate", quota)]
    assert job_failure(job(), [], events, NOW) == (
        f"Kubernetes could not create the flow-run pod of Job {NAME}: {quota}"
    )
    assert job_failure(job(), [], [], NOW) is None  # no pod yet, no event: just starting


def test_a_pod_pending_past_the_limit_fails_with_its_last_event() -> None:
    pending = pod("Pending")
    events = [
        event("Pod", pending.metadata.name, "FailedScheduling",
              "0/3 nodes are available: 3 Insufficient memory."),
    ]  # fmt: skip
    message = job_failure(job(), [pending], events, NOW, pending_limit=600)
    assert message == (
        f"flow-run pod {pending.metadata.name} stayed Pending for 1200 s: FailedScheduling: "
        "0/3 nodes are available: 3 Insufficient memory."
    )
    assert job_failure(job(), [pending], events, NOW, pending_limit=1800) is None


@pytest.mark.parametrize(
    ("terminated", "expected"),
    [
        ({"exitCode": 137, "reason": "OOMKilled"}, "exited 137 (OOMKilled); out of memory"),
        ({"exitCode": 6, "reason": "Error"}, "exited 6 (Error)"),
    ],
)
def test_a_terminated_flow_container_fails_the_run(terminated, expected) -> None:
    dead = pod("Failed", container_state={"terminated": terminated})
    assert expected in job_failure(job(), [dead], [], NOW)


def test_a_running_pod_is_left_alone() -> None:
    running = pod("Running", container_state={"running": {"startedAt": CREATED}})
    assert job_failure(job(), [running], [], NOW) is None


def test_a_pass_fails_the_stuck_run_deletes_its_job_and_survives_a_deleted_run() -> None:
    """JobChecks over the client's objects: a Job whose run is gone (prefect's client raises)
    does not stop the pass; the Job that cannot create its pod fails its run."""
    from prefect.engine.state import Running

    from bootstrap.agent.kubernetes_runs import JobChecks

    stuck, orphan = job(), job()
    orphan.metadata.name, orphan.metadata.labels = (
        "prefect-job-gone",
        {"prefect.io/flow_run_id": "gone"},
    )
    quota = event("Job", NAME, "FailedCreate", "exceeded quota: compute")
    done = {"states": {}, "logs": [], "deleted": []}

    class Client:
        def get_flow_run_state(self, run_id):
            if run_id == "gone":
                raise ValueError("flow run gone not found")
            return Running()

        def set_flow_run_state(self, flow_run_id, state):
            done["states"][flow_run_id] = state

        def write_run_logs(self, logs):
            done["logs"] += logs

    class Batch:
        def list_namespaced_job(self, namespace, label_selector):
            return kubernetes.client.V1JobList(items=[orphan, stuck])

        def delete_namespaced_job(self, name, namespace, body):
            done["deleted"].append(name)

    class Core:
        def list_namespaced_pod(self, namespace, label_selector):
            return kubernetes.client.V1PodList(items=[])

        def list_namespaced_event(self, namespace, field_selector):
            items = [quota] if field_selector == f"involvedObject.name={NAME}" else []
            return kubernetes.client.CoreV1EventList(items=items)

    class Agent:
        namespace = "prefect"
        client, batch_client, core_client = Client(), Batch(), Core()

    assert JobChecks(Agent()).run() == [RUN]
    assert done["states"][RUN].is_failed()
    assert "exceeded quota" in done["states"][RUN].message
    assert done["deleted"] == [NAME]
    assert "exceeded quota" in done["logs"][0]["message"]


def test_a_non_root_container_of_this_image_that_names_no_user_gets_the_runtime_user() -> None:
    """The image's USER is root: a run's own job_template asking runAsNonRoot without a
    user would be refused by the kubelet; a container naming its user, one in a pod naming
    one, a sidecar of another image, or one not asking, stays as it is."""
    from bootstrap.agent.kubernetes_runs import run_as_runtime_user

    ours = "registry.example.org/prefect-agent:1.0"

    def job(pod_context=None, container_context=None, sidecar=None):
        container = {"name": "flow", "image": ours}
        if container_context is not None:
            container["securityContext"] = container_context
        pod = {"containers": [container, *([sidecar] if sidecar else [])]}
        if pod_context is not None:
            pod["securityContext"] = pod_context
        return {"spec": {"template": {"spec": pod}}}

    def contexts(made):
        pod = made["spec"]["template"]["spec"]
        return [c.get("securityContext") for c in pod["containers"]]

    fixed = run_as_runtime_user(job(container_context={"runAsNonRoot": True}), ours, 4000)
    assert contexts(fixed) == [{"runAsNonRoot": True, "runAsUser": 4000}]
    sidecar = {"name": "proxy", "image": "envoyproxy/envoy:v1.31"}
    fixed = run_as_runtime_user(
        job({"runAsNonRoot": True, "fsGroup": 0}, sidecar=sidecar), ours, 1000
    )
    assert contexts(fixed) == [{"runAsUser": 1000}, None]  # the sidecar keeps its own USER
    assert fixed["spec"]["template"]["spec"]["securityContext"] == {
        "runAsNonRoot": True,
        "fsGroup": 0,
    }
    named = job(pod_context={"runAsNonRoot": True, "runAsUser": 4242})
    assert contexts(run_as_runtime_user(named, ours, 1000)) == [None]
    own_user = job(container_context={"runAsNonRoot": True, "runAsUser": 4242})
    assert contexts(run_as_runtime_user(own_user, ours, 1000))[0]["runAsUser"] == 4242
    allowed = job(pod_context={"runAsNonRoot": True}, container_context={"runAsNonRoot": False})
    assert contexts(run_as_runtime_user(allowed, ours, 1000)) == [{"runAsNonRoot": False}]
    assert contexts(run_as_runtime_user(job(), ours, 1000)) == [None]  # root allowed
    unknown = job(pod_context={"runAsNonRoot": True})
    assert contexts(run_as_runtime_user(unknown, None, 1000)) == [None]
