"""The flow-run Job template: rendered from settings, handed to the agent, and applied.

The proof goes through prefect 1.2.4's own code, with no cluster: the argv that
``agent_launch`` builds is run through prefect's real ``prefect agent kubernetes start``
command (only ``KubernetesAgent.start`` is replaced, to keep the agent it built), and that
agent's ``generate_job_spec`` turns a flow run into the Job it would submit.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import kubernetes
import kubernetes_validate
import pytest
import yaml
from kubernetes.config import kube_config
from prefect.agent.kubernetes import KubernetesAgent
from prefect.cli.agent import agent as prefect_agent_cli
from prefect.run_configs import KubernetesRun
from prefect.storage import Local
from prefect.utilities.graphql import GraphQLResult

from bootstrap.agent.command import agent_launch
from bootstrap.api.client import ApiConfig
from bootstrap.kubernetes import job_template as jt
from bootstrap.settings import load_settings
from bootstrap.util.errors import PreflightError

API = ApiConfig("http://127.0.0.1:4200/graphql")
TENANT = "4c5e27e7-1c6c-4f8c-9c36-1d2a0f5a6b01"
IMAGE = "registry.example.org/lume/prefect-agent:1.2.4-1"
JOB_SETTINGS = {
    "agent_type": "kubernetes",
    "kubernetes_image": IMAGE,
    "kubernetes_namespace": "lume-flows",
    "kubernetes_service_account_name": "flow-runner",
    "kubernetes_image_pull_secrets": ["registry-creds"],
    "kubernetes_labels": {"team": "lume"},
    "kubernetes_job_cpu_request": "1",
    "kubernetes_job_cpu_limit": "2",
    "kubernetes_job_memory_request": "1Gi",
    "kubernetes_job_memory_limit": "4Gi",
    "kubernetes_job_env_secrets": ["lume-db-credentials"],
}


@pytest.fixture(autouse=True)
def _agent_class_restored():
    """The launcher's hooks wrap prefect's KubernetesAgent for the whole process (how many
    depends on the settings: the limit adds two): whatever a test wrapped or added is taken
    off again, so the next test on this worker gets prefect's own class."""
    before = dict(vars(KubernetesAgent))
    yield
    for name in set(vars(KubernetesAgent)) - set(before):
        delattr(KubernetesAgent, name)
    for name, value in before.items():
        if vars(KubernetesAgent).get(name) is not value:
            setattr(KubernetesAgent, name, value)


@pytest.fixture(autouse=True)
def _no_cluster_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith(("BOOTSTRAP_", "KUBERNETES_", "NAMESPACE", "SERVICE_ACCOUNT_NAME")):
            monkeypatch.delenv(name)
    monkeypatch.delenv("IMAGE_PULL_SECRETS", raising=False)
    # prefect's agent loads the kubeconfig below as the client's process-wide default
    monkeypatch.setattr(kubernetes.client.Configuration, "_default", None)
    # A kubeconfig naming a server nobody listens on: the agent's clients are created from
    # it, and nothing here sends a request.
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "none", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "none", "user": {"token": "unused"}}],
                "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none"}}],
                "current-context": "none",
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    # the kubernetes client reads KUBECONFIG once, at import
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))


def flow_run(run_config: Optional[KubernetesRun] = None) -> GraphQLResult:
    """What the agent gets from the server's flow_run query, for a script-stored flow."""
    return GraphQLResult(
        {
            "id": "9e2f3c3a-flow-run",
            "name": "fake-run",
            "flow": {
                "id": "5b1c0e7d-flow",
                "name": "fake",
                "storage": Local(path="/opt/flows/fake.py", stored_as_script=True).serialize(),
                "core_version": "1.2.4",
            },
            "run_config": run_config.serialize() if run_config else None,
        }
    )


def agent_from_bootstrap(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **values
) -> KubernetesAgent:
    """The KubernetesAgent that `prefect agent kubernetes start <our argv>` builds."""
    settings = load_settings(values)
    launch = agent_launch(settings, API, TENANT, {}, work_dir=str(tmp_path))
    if launch.job_template is not None:
        jt.write(launch.job_template)
    kind, start, *options = launch.argv[2:]
    assert (kind, start) == ("kubernetes", "start")
    built = []
    monkeypatch.setattr(KubernetesAgent, "start", lambda self: built.append(self))
    command = prefect_agent_cli.commands["kubernetes"].commands["start"]
    command.main(options, prog_name="prefect agent kubernetes start", standalone_mode=False)
    (agent,) = built
    return agent


def flow_container(job: dict) -> dict:
    return job["spec"]["template"]["spec"]["containers"][0]


# The template itself -------------------------------------------------------------------------


def test_template_has_the_flow_container_with_settings() -> None:
    job = jt.job_template(load_settings(JOB_SETTINGS))
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["name"] == "flow"
    assert container["image"] == IMAGE
    assert "command" not in container  # the image's entrypoint runs the agent's args
    assert container["resources"] == {
        "requests": {"cpu": "1", "memory": "1Gi"},
        "limits": {"cpu": "2", "memory": "4Gi"},
    }
    assert container["envFrom"] == [{"secretRef": {"name": "lume-db-credentials"}}]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    pod = job["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == 1000
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["serviceAccountName"] == "flow-runner"
    assert pod["imagePullSecrets"] == [{"name": "registry-creds"}]
    assert pod["restartPolicy"] == "Never"
    assert job["metadata"]["namespace"] == "lume-flows"
    assert job["metadata"]["labels"]["team"] == "lume"
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "flow-run"


PLACED = {
    **JOB_SETTINGS,
    "kubernetes_job_volumes": ["pvc:lume-data:/data", "hostPath:/srv/lume/models:/models:ro"],
    "kubernetes_job_node_selector": {"example.org/gpu": "true"},
    "kubernetes_job_tolerations": ["nvidia.com/gpu:NoSchedule"],
    "kubernetes_job_affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
                ]
            }
        }
    },
    "kubernetes_job_priority_class": "lume-batch",
}


def test_template_mounts_the_volumes_and_places_the_pod() -> None:
    job = jt.job_template(load_settings(PLACED))
    pod = job["spec"]["template"]["spec"]
    assert pod["volumes"] == [
        {
            "name": "volume-0",
            "persistentVolumeClaim": {"claimName": "lume-data", "readOnly": False},
        },
        {"name": "volume-1", "hostPath": {"path": "/srv/lume/models"}},
    ]
    assert flow_container(job)["volumeMounts"] == [
        {"name": "volume-0", "mountPath": "/data"},
        {"name": "volume-1", "mountPath": "/models", "readOnly": True},
    ]
    assert pod["nodeSelector"] == {"example.org/gpu": "true"}
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert pod["affinity"] == PLACED["kubernetes_job_affinity"]
    assert pod["priorityClassName"] == "lume-batch"


def test_defaults_request_but_do_not_limit() -> None:
    container = flow_container(jt.job_template(load_settings({})))
    assert container["resources"] == {"requests": {"cpu": "500m", "memory": "512Mi"}}
    assert "image" not in container  # no image setting: prefect picks the flow's own


def test_template_file_only_for_the_kubernetes_agent(tmp_path: Path) -> None:
    assert jt.choose(load_settings({}), str(tmp_path)) is None  # docker
    own = load_settings({"agent_type": "kubernetes", "kubernetes_job_template": "/etc/job.yaml"})
    assert jt.choose(own, str(tmp_path)) == jt.TemplateFile("/etc/job.yaml")  # used as it is
    launch = agent_launch(own, API, TENANT, {}, str(tmp_path))
    assert launch.argv[launch.argv.index("--job-template") + 1] == "/etc/job.yaml"
    rendered = jt.choose(load_settings(JOB_SETTINGS), str(tmp_path))
    assert rendered is not None
    assert Path(rendered.path).parent == tmp_path
    assert not Path(rendered.path).exists()  # deciding writes nothing (agent --print)
    jt.write(rendered)
    assert yaml.safe_load(Path(rendered.path).read_text()) == jt.job_template(
        load_settings(JOB_SETTINGS)
    )


def test_the_rendered_template_goes_to_a_directory_of_this_user_only(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    settings = load_settings(JOB_SETTINGS)
    target = shared / "job-template-dir"
    target.symlink_to(tmp_path)  # planted by someone else in a shared /tmp
    with pytest.raises(PreflightError, match="not a directory owned by"):
        jt.write(jt.TemplateFile(str(target / "job.yaml"), "x: 1\n"))
    default = jt.choose(settings)
    assert default is not None
    assert Path(default.path).parent.name == f"prefect-agent-{os.getuid()}"


# Through prefect's own code -------------------------------------------------------------------


def test_prefect_cli_hands_the_rendered_template_to_the_agent(monkeypatch, tmp_path) -> None:
    agent = agent_from_bootstrap(monkeypatch, tmp_path, **JOB_SETTINGS)
    assert Path(agent.job_template_path).parent == tmp_path
    assert agent.namespace == "lume-flows"
    assert agent.service_account_name == "flow-runner"
    assert agent.image_pull_secrets == ["registry-creds"]


def test_flow_run_job_gets_the_limits_from_settings(monkeypatch, tmp_path) -> None:
    agent = agent_from_bootstrap(monkeypatch, tmp_path, **JOB_SETTINGS)
    job = agent.generate_job_spec(flow_run())
    container = flow_container(job)
    assert container["name"] == "flow"
    assert container["resources"] == {
        "requests": {"cpu": "1", "memory": "1Gi"},
        "limits": {"cpu": "2", "memory": "4Gi"},
    }
    assert container["image"] == IMAGE  # no image on the flow: the template's
    assert container["args"] == ["prefect", "execute", "flow-run"]
    assert "command" not in container
    assert container["envFrom"] == [{"secretRef": {"name": "lume-db-credentials"}}]
    assert container["securityContext"]["runAsNonRoot"] is True
    pod = job["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == 1000
    assert pod["serviceAccountName"] == "flow-runner"
    labels = job["metadata"]["labels"]
    assert labels["team"] == "lume"
    assert labels["prefect.io/flow_run_id"] == "9e2f3c3a-flow-run"
    # the Job prefect would submit is a valid Job for a current Kubernetes
    kubernetes_validate.validate(job, kubernetes_validate.latest_version(), strict=True)


def test_prefect_keeps_the_volumes_and_placement_in_the_job(monkeypatch, tmp_path) -> None:
    agent = agent_from_bootstrap(monkeypatch, tmp_path, **PLACED)
    job = agent.generate_job_spec(flow_run(KubernetesRun(image="registry.example.org/m:1")))
    pod = job["spec"]["template"]["spec"]
    rendered = jt.job_template(load_settings(PLACED))["spec"]["template"]["spec"]
    for key in ("volumes", "nodeSelector", "tolerations", "affinity", "priorityClassName"):
        assert pod[key] == rendered[key], key
    assert flow_container(job)["volumeMounts"][0] == {"name": "volume-0", "mountPath": "/data"}
    assert flow_container(job)["image"] == "registry.example.org/m:1"
    kubernetes_validate.validate(job, kubernetes_validate.latest_version(), strict=True)


def test_a_kubernetes_run_overrides_key_by_key(monkeypatch, tmp_path) -> None:
    agent = agent_from_bootstrap(monkeypatch, tmp_path, **JOB_SETTINGS)
    run_config = KubernetesRun(
        image="registry.example.org/lume/model:3", cpu_limit="3", memory_request="2Gi"
    )
    job = agent.generate_job_spec(flow_run(run_config))
    container = flow_container(job)
    assert container["resources"] == {
        "requests": {"cpu": "1", "memory": "2Gi"},  # memory_request from the run config
        "limits": {"cpu": "3", "memory": "4Gi"},  # cpu_limit from the run config
    }
    assert container["image"] == "registry.example.org/lume/model:3"
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_without_the_template_prefect_sets_no_resources(monkeypatch, tmp_path) -> None:
    """The weak anchor: prefect's default template (and its install's JOB_*_LIMIT
    variables, which the 1.2.4 agent never reads) leave flow runs without limits."""
    monkeypatch.setenv("JOB_MEM_LIMIT", "4Gi")
    monkeypatch.setenv("JOB_CPU_LIMIT", "2")
    built = []
    monkeypatch.setattr(KubernetesAgent, "start", lambda self: built.append(self))
    command = prefect_agent_cli.commands["kubernetes"].commands["start"]
    command.main([], prog_name="prefect agent kubernetes start", standalone_mode=False)
    container = flow_container(built[0].generate_job_spec(flow_run()))
    assert container["resources"] == {"requests": {}, "limits": {}}


def test_a_runs_own_job_template_is_held_to_the_flow_run_policy(monkeypatch, tmp_path) -> None:
    """A KubernetesRun's job_template replaces the agent's: the launcher's hook checks the
    Job prefect builds from it before anything is submitted."""
    from bootstrap.agent import hooks
    from bootstrap.agent.command import flow_run_policy
    from bootstrap.agent.policy import PolicyRefusal

    agent = agent_from_bootstrap(monkeypatch, tmp_path, **JOB_SETTINGS)
    hooks.install_policy("kubernetes", flow_run_policy(load_settings(JOB_SETTINGS)))
    assert flow_container(agent.generate_job_spec(flow_run()))["name"] == "flow"  # ours passes
    escalating = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "spec": {
            "template": {
                "spec": {
                    "hostPID": True,
                    "containers": [{"name": "flow", "securityContext": {"privileged": True}}],
                    "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
                }
            }
        },
    }
    with pytest.raises(PolicyRefusal, match="rule 'host-namespaces': hostPID"):
        agent.generate_job_spec(flow_run(KubernetesRun(job_template=escalating)))
    other_account = KubernetesRun(service_account_name="cluster-admin")
    with pytest.raises(PolicyRefusal, match="rule 'service-account'"):
        agent.generate_job_spec(flow_run(other_account))


def test_the_job_runs_once_is_named_for_its_run_and_expires(monkeypatch, tmp_path) -> None:
    """backoffLimit 0 (Kubernetes' default 6 reruns the flow), a TTL, and one Job name per
    flow run (a second agent's create gets 409, which prefect takes as already submitted)."""
    from bootstrap.agent import kubernetes_runs
    from bootstrap.agent.config import LauncherConfig
    from bootstrap.agent.metrics import Metrics

    agent = agent_from_bootstrap(monkeypatch, tmp_path, **JOB_SETTINGS)
    kubernetes_runs.install(Metrics("kubernetes", {}), LauncherConfig(agent_type="kubernetes"))
    job = agent.generate_job_spec(flow_run())
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["ttlSecondsAfterFinished"] == 86400
    assert job["metadata"]["name"] == "prefect-job-9e2f3c3a-flow-run"
    kubernetes_validate.validate(job, kubernetes_validate.latest_version(), strict=True)

    created = []

    class Batch:
        def list_namespaced_job(self, namespace, field_selector):
            return kubernetes.client.V1JobList(items=[])  # no finished Job of the run

        def create_namespaced_job(self, namespace, body):
            if body["metadata"]["name"] in created:
                raise kubernetes.client.rest.ApiException(status=409, reason="AlreadyExists")
            created.append(body["metadata"]["name"])

    agent.batch_client = Batch()
    assert agent.deploy_flow(flow_run()) == "Job prefect-job-9e2f3c3a-flow-run"
    assert agent.deploy_flow(flow_run()) == "Job prefect-job-9e2f3c3a-flow-run"  # 409: once
    assert created == ["prefect-job-9e2f3c3a-flow-run"]
    no_ttl = jt.job_template(load_settings({**JOB_SETTINGS, "kubernetes_job_ttl_seconds": ""}))
    assert "ttlSecondsAfterFinished" not in no_ttl["spec"]


def test_the_ceilings_are_the_default_limits_and_a_run_past_them_is_refused(
    monkeypatch, tmp_path
) -> None:
    """BOOTSTRAP_FLOW_RUN_MAX_MEMORY/CPUS: the limits of every Job prefect builds from the
    agent's template; a KubernetesRun asking more is refused by the policy's 'resources'."""
    from bootstrap.agent.command import flow_run_policy
    from bootstrap.agent.policy import Policy, check_job

    values = {"agent_type": "kubernetes", "flow_run_max_memory": "2g", "flow_run_max_cpus": 1.5}
    agent = agent_from_bootstrap(monkeypatch, tmp_path, **values)
    policy = Policy.from_dict(flow_run_policy(load_settings(values)).to_dict())
    job = agent.generate_job_spec(flow_run(KubernetesRun(memory_limit="1Gi")))
    assert flow_container(job)["resources"]["limits"] == {"cpu": "1.5", "memory": "1Gi"}
    assert check_job(job, policy) is None
    greedy = agent.generate_job_spec(flow_run(KubernetesRun(memory_limit="3Gi")))
    refusal = check_job(greedy, policy)
    assert (refusal.rule, refusal.detail) == (
        "resources",
        "container flow: memory limit 3Gi is above the agent's ceiling (2048Mi)",
    )
    plain = agent.generate_job_spec(flow_run())
    assert flow_container(plain)["resources"]["limits"] == {"cpu": "1.5", "memory": "2048Mi"}
    # a run's own job_template replaces the agent's, limits included: no limit is past them
    own = {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
        "containers": [{"name": "flow"}]}}}}  # fmt: skip
    unlimited = agent.generate_job_spec(flow_run(KubernetesRun(job_template=own)))
    assert check_job(unlimited, policy).detail == (
        "container flow: no memory limit, above the agent's ceiling (2048Mi)"
    )
    sidecar = {"name": "fetch", "image": "busybox"}  # an init container counts too
    plain["spec"]["template"]["spec"]["initContainers"] = [sidecar]
    assert check_job(plain, policy).detail == (
        "container fetch: no memory limit, above the agent's ceiling (2048Mi)"
    )
    kubernetes_validate.validate(plain, kubernetes_validate.latest_version(), strict=True)
