"""`prefect-agent-bootstrap kubernetes manifest`: valid, complete, secret-free manifests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

import kubernetes_validate
import pytest
import yaml

from bootstrap.kubernetes import job_template as jt
from bootstrap.kubernetes import manifests as k8s
from bootstrap.kubernetes.kustomize import FILES as KUSTOMIZE_FILES
from bootstrap.settings import Settings, load_settings
from bootstrap.util.errors import SettingsError
from tests.helpers.host_tools import missing_tool

ROOT = Path(__file__).resolve().parents[3]
BASE_DIR = ROOT / "deploy" / "kubernetes"
API_URL = "http://prefect-apollo.prefect.svc:4200/graphql"
IMAGE = "registry.example.org/lume/prefect-agent:1.2.4-1"

FULL = {
    "tenant": "LUME Services",
    "projects": ["models", {"name": "sims", "description": "Simulations"}],
    "agent_name": "lume-k8s",
    "agent_labels": ["k8s", "gpu"],
    "agent_env": {"LUME_MODEL_DB": "mysql://db.example.org/models"},
    "log_level": "DEBUG",
    "wait_timeout": 300,
    "metrics_port": 9102,
    "agent_max_poll_interval": 2.5,
    "kubernetes_namespace": "lume-flows",
    "kubernetes_service_account_name": "flow-runner",
    "kubernetes_image_pull_secrets": ["registry-creds"],
    "kubernetes_delete_finished_jobs": False,
    "kubernetes_image": IMAGE,
    "kubernetes_image_pull_policy": "Always",
    "kubernetes_name": "lume-agent",
    "kubernetes_agent_namespace": "lume",
    "kubernetes_labels": {"team": "lume", "example.org/cost-center": "ad-123"},
    "kubernetes_agent_cpu_request": "200m",
    "kubernetes_agent_cpu_limit": "2",
    "kubernetes_agent_memory_request": "512Mi",
    "kubernetes_agent_memory_limit": "2Gi",
    "kubernetes_job_cpu_request": "1",
    "kubernetes_job_cpu_limit": "4",
    "kubernetes_job_memory_request": "2Gi",
    "kubernetes_job_memory_limit": "8Gi",
    "kubernetes_job_env_secrets": ["lume-db-credentials"],
    "kubernetes_run_as_user": 1234,
    "kubernetes_run_as_group": 2345,
    "kubernetes_api_key_secret": "prefect-api",
    "kubernetes_api_key_secret_key": "key",
    "kubernetes_prefect_api": API_URL,
    "kubernetes_job_volumes": [
        "pvc:lume-data:/data",
        "hostPath:/srv/lume/models:/models:ro",
        "configMap:lume-config:/etc/lume",
        "secret:lume-db:/run/secrets/lume",
    ],
    "kubernetes_agent_env_from": ["secret:prefect-agent-env", "configMap:prefect-agent-settings"],
    "kubernetes_agent_node_selector": {"kubernetes.io/os": "linux"},
    "kubernetes_job_node_selector": {"example.org/gpu": "true"},
    "kubernetes_agent_tolerations": ["dedicated=infra:NoSchedule"],
    "kubernetes_job_tolerations": [
        "nvidia.com/gpu:NoSchedule",
        {"key": "spot", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
    ],
    "kubernetes_agent_affinity": {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 50,
                    "preference": {
                        "matchExpressions": [
                            {"key": "example.org/pool", "operator": "In", "values": ["infra"]}
                        ]
                    },
                }
            ]
        }
    },
    "kubernetes_job_affinity": {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 10,
                    "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "x"}},
                    },
                }
            ]
        }
    },
    "kubernetes_agent_priority_class": "lume-infra",
    "kubernetes_job_priority_class": "lume-batch",
    "kubernetes_network_policy": True,
    "kubernetes_monitoring_namespace": "monitoring",
}


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("BOOTSTRAP_", "PREFECT__", "KUBERNETES_")):
            monkeypatch.delenv(name)


def settings_for(**values) -> Settings:
    return load_settings({"kubernetes_image": IMAGE, **values})


def by_kind(objects: List[dict]) -> Dict[str, dict]:
    return {obj["kind"]: obj for obj in objects}


def agent_container(objects: List[dict]) -> dict:
    (container,) = by_kind(objects)["Deployment"]["spec"]["template"]["spec"]["containers"]
    return container


def env_of(container: dict) -> Dict[str, dict]:
    return {item["name"]: item for item in container["env"]}


def kube_versions() -> List[str]:
    latest = kubernetes_validate.latest_version()
    major, minor = (int(part) for part in latest.split(".")[:2])
    return [f"{major}.{minor - 2}", latest]


# Schema validation ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", kube_versions())
@pytest.mark.parametrize("values", [{}, FULL], ids=["defaults", "customised"])
def test_manifests_and_job_template_validate_strictly(values: dict, version: str) -> None:
    settings = settings_for(**values)
    objects = [*k8s.manifests(settings, API_URL), jt.job_template(settings)]
    policy = ["NetworkPolicy"] if values else []
    assert [obj["kind"] for obj in objects] == [
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "Deployment",
        *policy,
        "Job",
    ]
    for obj in objects:
        # strict: unknown fields fail too (a typo such as runAsNonroot would not pass)
        kubernetes_validate.validate(obj, version, strict=True)


def test_strict_validation_does_catch_unknown_fields() -> None:
    deployment = by_kind(k8s.manifests(settings_for(), API_URL))["Deployment"]
    deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonroot"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, kubernetes_validate.latest_version(), strict=True)


# The Deployment --------------------------------------------------------------------------------


def test_deployment_runs_the_image_entrypoint_as_a_kubernetes_agent() -> None:
    objects = k8s.manifests(settings_for(), API_URL)
    container = agent_container(objects)
    assert container["image"] == IMAGE
    # no command/args: tini -> the bootstrap entrypoint (extras) -> prefect-agent-bootstrap run
    assert "command" not in container
    assert "args" not in container
    env = env_of(container)
    assert env["BOOTSTRAP_AGENT_TYPE"]["value"] == "kubernetes"
    assert env["PREFECT__BACKEND"]["value"] == "server"
    assert env["PREFECT__CLOUD__API"]["value"] == API_URL
    assert env["BOOTSTRAP_KUBERNETES_IMAGE"]["value"] == IMAGE
    # flow-run Jobs go to the namespace the agent is deployed in, whatever it is
    assert env["BOOTSTRAP_KUBERNETES_NAMESPACE"] == {
        "name": "BOOTSTRAP_KUBERNETES_NAMESPACE",
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
    }
    spec = by_kind(objects)["Deployment"]["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    assert spec["template"]["spec"]["serviceAccountName"] == "prefect-agent"


def test_probes_hit_the_agent_health_server_on_its_port() -> None:
    container = agent_container(k8s.manifests(settings_for(agent_address="http://:9090"), API_URL))
    assert container["ports"] == [{"name": "http", "containerPort": 9090, "protocol": "TCP"}]
    for probe in ("startupProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/api/health", "port": "http"}
    # readiness is its own answer: registered, and the last poll succeeded
    assert container["readinessProbe"]["httpGet"] == {"path": "/api/ready", "port": "http"}
    # the startup probe outlasts the wait for the server, so liveness never kills a start-up
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] > 120


def test_metrics_port_is_exposed_and_annotated_for_scraping() -> None:
    plain = by_kind(k8s.manifests(settings_for(), API_URL))["Deployment"]
    assert "annotations" not in plain["spec"]["template"]["metadata"]
    assert [port["name"] for port in agent_container([plain])["ports"]] == ["http"]
    deployment = by_kind(k8s.manifests(settings_for(metrics_port=9102), API_URL))["Deployment"]
    assert deployment["spec"]["template"]["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "9102",
        "prometheus.io/path": "/metrics",
    }
    container = agent_container([deployment])
    assert {"name": "metrics", "containerPort": 9102, "protocol": "TCP"} in container["ports"]
    assert {"name": "BOOTSTRAP_METRICS_PORT", "value": "9102"} in container["env"]


def test_health_server_bound_to_localhost_cannot_be_probed() -> None:
    with pytest.raises(SettingsError, match="all interfaces"):
        k8s.manifests(settings_for(agent_address="http://127.0.0.1:8080"), API_URL)


def test_security_context_is_non_root_and_restricted() -> None:
    objects = k8s.manifests(settings_for(), API_URL)
    pod = by_kind(objects)["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 1000,  # the image's USER is root (Docker socket): the uid is set here
        "runAsGroup": 1000,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    context = agent_container(objects)["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] == 1000


def test_resources_defaults_and_customised() -> None:
    default = agent_container(k8s.manifests(settings_for(), API_URL))["resources"]
    assert default == {
        "requests": {"cpu": "100m", "memory": "256Mi"},
        "limits": {"cpu": "1", "memory": "1Gi"},
    }
    custom = agent_container(k8s.manifests(settings_for(**FULL), API_URL))["resources"]
    assert custom == {
        "requests": {"cpu": "200m", "memory": "512Mi"},
        "limits": {"cpu": "2", "memory": "2Gi"},
    }
    no_cpu_limit = settings_for(kubernetes_agent_cpu_limit="")
    assert "cpu" not in agent_container(k8s.manifests(no_cpu_limit, API_URL))["resources"]["limits"]


def test_api_key_comes_from_a_secret_and_is_never_inline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT__CLOUD__API_KEY", "pa_very_secret")
    settings = settings_for(**FULL)
    objects = k8s.manifests(settings, API_URL)
    env = env_of(agent_container(objects))
    assert env["PREFECT__CLOUD__API_KEY"] == {
        "name": "PREFECT__CLOUD__API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "prefect-api", "key": "key"}},
    }
    assert "pa_very_secret" not in k8s.dump(objects)
    without = env_of(agent_container(k8s.manifests(settings_for(), API_URL)))
    assert "PREFECT__CLOUD__API_KEY" not in without


def test_secret_looking_values_are_refused_not_written() -> None:
    settings = settings_for(agent_env={"DB_PASSWORD": "hunter2"})
    with pytest.raises(SettingsError, match="DB_PASSWORD") as caught:
        k8s.manifests(settings, API_URL)
    assert "hunter2" not in str(caught.value)
    with pytest.raises(SettingsError, match="AWS_SECRET_ACCESS_KEY"):
        k8s.manifests(settings_for(), API_URL, {"AWS_SECRET_ACCESS_KEY": "x"})


def test_labels_on_every_object_and_selector_is_stable() -> None:
    objects = k8s.manifests(settings_for(**FULL), API_URL)
    for obj in objects:
        labels = obj["metadata"]["labels"]
        assert labels["team"] == "lume"
        assert labels["example.org/cost-center"] == "ad-123"
        assert labels["app.kubernetes.io/instance"] == "lume-agent"
    deployment = by_kind(objects)["Deployment"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    # only the name and instance: user labels may change without a new (immutable) selector
    assert selector == {
        "app.kubernetes.io/name": "prefect-agent",
        "app.kubernetes.io/instance": "lume-agent",
    }
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_rbac_lives_in_the_jobs_namespace_and_binds_the_agent_account() -> None:
    kinds = by_kind(k8s.manifests(settings_for(**FULL), API_URL))
    assert kinds["ServiceAccount"]["metadata"]["namespace"] == "lume"
    assert kinds["Deployment"]["metadata"]["namespace"] == "lume"
    assert kinds["Role"]["metadata"]["namespace"] == "lume-flows"
    binding = kinds["RoleBinding"]
    assert binding["metadata"]["namespace"] == "lume-flows"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "lume-agent",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "lume-agent", "namespace": "lume"}
    ]
    assert kinds["Deployment"]["spec"]["template"]["spec"]["serviceAccountName"] == "lume-agent"


def test_pod_environment_gives_back_the_same_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The BOOTSTRAP_* variables of the Deployment, read by the bootstrap in the pod, give
    the settings that were rendered (except the manifest-only ones)."""
    settings = settings_for(**{**FULL, "kubernetes_job_cpu_request": ""})
    env = env_of(agent_container(k8s.manifests(settings, API_URL)))
    for item in env.values():
        if item["name"].startswith("BOOTSTRAP_"):
            monkeypatch.setenv(item["name"], item["value"])
    in_pod = load_settings({})
    for name in Settings.__fields__:
        if name not in k8s.MANIFEST_ONLY_SETTINGS:
            assert getattr(in_pod, name) == getattr(settings, name), name
    assert in_pod.agent_type.value == "kubernetes"
    assert in_pod.kubernetes_job_cpu_request is None


def test_default_agent_name_and_namespace_in_the_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    env = env_of(agent_container(k8s.manifests(settings_for(), API_URL)))
    assert env["BOOTSTRAP_AGENT_NAME"]["value"] == "prefect-agent"
    names = [name for name in env if name.startswith("BOOTSTRAP_")]
    # defaults are not repeated: only what the pod needs to know
    assert sorted(names) == sorted(
        [
            "BOOTSTRAP_AGENT_TYPE",
            "BOOTSTRAP_AGENT_NAME",
            "BOOTSTRAP_KUBERNETES_NAMESPACE",
            "BOOTSTRAP_KUBERNETES_IMAGE",
        ]
    )


# Where the agent runs, what it reads, who reaches it -----------------------------------------


def pod_spec(objects: List[dict]) -> dict:
    return by_kind(objects)["Deployment"]["spec"]["template"]["spec"]


def test_agent_pod_scheduling_and_variables_from_secrets_and_config_maps() -> None:
    objects = k8s.manifests(settings_for(**FULL), API_URL)
    spec = pod_spec(objects)
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert spec["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "infra", "effect": "NoSchedule"}
    ]
    assert spec["affinity"] == FULL["kubernetes_agent_affinity"]
    assert spec["priorityClassName"] == "lume-infra"
    assert agent_container(objects)["envFrom"] == [
        {"secretRef": {"name": "prefect-agent-env"}},
        {"configMapRef": {"name": "prefect-agent-settings"}},
    ]
    plain = pod_spec(k8s.manifests(settings_for(), API_URL))
    assert not {"nodeSelector", "tolerations", "affinity", "priorityClassName"} & set(plain)
    # the agent's own scheduling is not the flow runs': not handed to the pod
    names = set(env_of(agent_container(objects)))
    assert "BOOTSTRAP_KUBERNETES_AGENT_NODE_SELECTOR" not in names
    assert "BOOTSTRAP_KUBERNETES_JOB_NODE_SELECTOR" in names


def test_read_only_root_with_an_empty_dir_for_each_writable_place() -> None:
    objects = k8s.manifests(settings_for(), API_URL)
    container = agent_container(objects)
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    # /tmp: the run directory; the caches; the extras overlay; ~/.prefect
    assert set(mounts) == {
        "/tmp",
        "/var/cache/prefect-agent",
        "/var/lib/prefect-agent",
        "/home/prefect",
    }
    volumes = {volume["name"]: volume for volume in pod_spec(objects)["volumes"]}
    assert set(volumes) == set(mounts.values())
    assert all("sizeLimit" in volume["emptyDir"] for volume in volumes.values())
    writable = k8s.manifests(settings_for(kubernetes_agent_read_only_root=False), API_URL)
    assert "readOnlyRootFilesystem" not in agent_container(writable)["securityContext"]
    assert "volumes" not in pod_spec(writable)


def test_network_policy_admits_only_the_monitoring_namespace() -> None:
    assert "NetworkPolicy" not in by_kind(k8s.manifests(settings_for(), API_URL))
    closed = by_kind(k8s.manifests(settings_for(kubernetes_network_policy=True), API_URL))
    policy = closed["NetworkPolicy"]
    assert policy["spec"]["podSelector"] == closed["Deployment"]["spec"]["selector"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["spec"]["ingress"] == []  # the kubelet's probes are not subject to it
    opened = by_kind(k8s.manifests(settings_for(**FULL), API_URL))["NetworkPolicy"]
    (rule,) = opened["spec"]["ingress"]
    assert rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    assert rule["ports"] == [
        {"protocol": "TCP", "port": "http"},
        {"protocol": "TCP", "port": "metrics"},
    ]
    assert opened["metadata"]["namespace"] == "lume"


def test_localhost_api_url_is_flagged() -> None:
    assert k8s.api_url_warning("http://localhost:4200/graphql")
    assert k8s.api_url_warning("http://127.0.0.1:4200")
    assert k8s.api_url_warning(API_URL) is None


# The CLI -----------------------------------------------------------------------------------------


def bootstrap_cli(*args: str, env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    clean = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("BOOTSTRAP_", "PREFECT__", "KUBERNETES_"))
    }
    return subprocess.run(
        [sys.executable, "-m", "bootstrap", *args],
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        cwd=ROOT,
        timeout=60,
    )


def test_cli_prints_multi_document_yaml_on_stdout() -> None:
    result = bootstrap_cli(
        "kubernetes",
        "manifest",
        "--kubernetes-image",
        IMAGE,
        "--projects",
        "models",
        "--projects",
        "sims",
        "--env",
        "EXTRA_PIP_PACKAGES=lume-model",
        env={"PREFECT__CLOUD__API": API_URL},
    )
    assert result.returncode == 0, result.stderr
    objects = list(yaml.safe_load_all(result.stdout))
    assert [obj["kind"] for obj in objects] == [
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "Deployment",
    ]
    env = env_of(agent_container(objects))
    assert env["EXTRA_PIP_PACKAGES"]["value"] == "lume-model"
    assert env["PREFECT__CLOUD__API"]["value"] == API_URL
    assert yaml.safe_load(env["BOOTSTRAP_PROJECTS"]["value"]) == [
        {"name": "models"},
        {"name": "sims"},
    ]
    assert result.stderr == ""


def test_cli_warns_about_a_localhost_api_url_on_stderr() -> None:
    result = bootstrap_cli("kubernetes", "manifest", "--kubernetes-image", IMAGE)
    assert result.returncode == 0, result.stderr
    assert "http://localhost:4200 points at the pod itself" in result.stderr
    list(yaml.safe_load_all(result.stdout))  # stdout stays pure YAML


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (
            ["--kubernetes-image", IMAGE, "--kubernetes-job-memory-limit", "2 GB"],
            {},
            "invalid setting --kubernetes-job-memory-limit='2 GB': '2 GB' is not a "
            "Kubernetes memory quantity",
        ),
        (
            ["--kubernetes-image", IMAGE],
            {"BOOTSTRAP_KUBERNETES_AGENT_CPU_REQUEST": "fast"},
            "invalid setting BOOTSTRAP_KUBERNETES_AGENT_CPU_REQUEST='fast'",
        ),
        (
            ["--kubernetes-image", IMAGE, "--kubernetes-labels", "team=LUME services"],
            {},
            "label team='LUME services': a label value must be",
        ),
        (
            ["--kubernetes-image", IMAGE, "--kubernetes-labels", "-team=lume"],
            {},
            "label key '-team'",
        ),
        (
            ["--kubernetes-image", IMAGE, "--kubernetes-name", "Prefect_Agent"],
            {},
            "invalid setting --kubernetes-name='Prefect_Agent'",
        ),
        (
            ["--kubernetes-image", IMAGE, "--kubernetes-agent-namespace", "lume.flows"],
            {},
            "invalid setting --kubernetes-agent-namespace='lume.flows'",
        ),
        (
            [],
            {},
            "the setting kubernetes_image is missing: set BOOTSTRAP_KUBERNETES_IMAGE or "
            "--kubernetes-image",
        ),
        (
            ["--kubernetes-image", "Registry/Prefect Agent"],
            {},
            "invalid setting --kubernetes-image='Registry/Prefect Agent'",
        ),
        (
            [
                "--kubernetes-image",
                IMAGE,
                "--kubernetes-job-cpu-request",
                "2",
                "--kubernetes-job-cpu-limit",
                "500m",
            ],
            {},
            "the cpu request 2 is more than the cpu limit 500m",
        ),
        (
            ["--kubernetes-image", IMAGE],
            {"BOOTSTRAP_KUBERNETES_JOB_VOLUMES": "nfs:server:/data"},
            "unknown volume kind 'nfs'",
        ),
        (
            ["--kubernetes-image", IMAGE],
            {"BOOTSTRAP_KUBERNETES_JOB_VOLUMES": "pvc:a:/data,pvc:b:/data"},
            "more than one volume mounted at /data",
        ),
        (
            ["--kubernetes-image", IMAGE, "--kubernetes-job-tolerations", "gpu:NoSchedul"],
            {},
            "effect must be one of NoSchedule, PreferNoSchedule, NoExecute",
        ),
        (
            ["--kubernetes-image", IMAGE],
            {
                "BOOTSTRAP_KUBERNETES_JOB_AFFINITY": '{"nodeAffinity": {"requiredDuringScheduling'
                'IgnoredDuringExecution": {"nodeSelectorTerm": []}}}'
            },
            "unknown field 'nodeSelectorTerm' (a NodeSelector has nodeSelectorTerms)",
        ),
        (
            ["--kubernetes-image", IMAGE, "--kubernetes-agent-env-from", "vault:db"],
            {},
            "'vault:db' is not secret:NAME or configMap:NAME",
        ),
        (
            ["--kubernetes-image", IMAGE, "--kubernetes-job-priority-class", "High"],
            {},
            "not a valid Kubernetes PriorityClass name",
        ),
        (
            ["--kubernetes-image", IMAGE],
            {"BOOTSTRAP_KUBERNETES_JOB_NODE_SELECTOR": "gpu=yes please"},
            "label gpu='yes please'",
        ),
        (
            ["--kubernetes-image", IMAGE, "--kubernetes-monitoring-namespace", "Monitoring"],
            {},
            "invalid setting --kubernetes-monitoring-namespace='Monitoring'",
        ),
    ],
    ids=[
        "quantity",
        "quantity-env",
        "label-value",
        "label-key",
        "name",
        "namespace",
        "no-image",
        "bad-image",
        "request-over-limit",
        "volume-kind",
        "volume-twice",
        "toleration-effect",
        "affinity-typo",
        "env-from-kind",
        "priority-class",
        "node-selector",
        "monitoring-namespace",
    ],
)
def test_bad_settings_are_named_and_exit_2(args: List[str], env: dict, expected: str) -> None:
    result = bootstrap_cli("kubernetes", "manifest", *args, env=env)
    assert result.returncode == 2, result
    assert expected in result.stderr
    assert result.stdout == ""  # nothing rendered


def test_cli_job_template_command_prints_the_template() -> None:
    result = bootstrap_cli(
        "kubernetes",
        "job-template",
        "--kubernetes-job-memory-limit",
        "4Gi",
        "--kubernetes-image",
        IMAGE,
    )
    assert result.returncode == 0, result.stderr
    job = yaml.safe_load(result.stdout)
    (flow,) = job["spec"]["template"]["spec"]["containers"]
    assert flow["name"] == "flow"
    assert flow["resources"]["limits"] == {"memory": "4Gi"}


# The kustomize base in deploy/kubernetes ------------------------------------------------------


def render_base(out: Path) -> subprocess.CompletedProcess:
    return bootstrap_cli(
        "kubernetes",
        "manifest",
        "--settings-file",
        str(BASE_DIR / "bootstrap-settings.yaml"),
        "--output-dir",
        str(out),
    )


def test_kustomize_base_is_in_sync_with_the_renderer(tmp_path: Path) -> None:
    result = render_base(tmp_path)
    assert result.returncode == 0, result.stderr
    generated = sorted(path.name for path in tmp_path.iterdir())
    committed = sorted(
        path.name for path in BASE_DIR.iterdir() if path.name != "bootstrap-settings.yaml"
    )
    assert generated == committed
    for name in generated:
        assert (BASE_DIR / name).read_text() == (tmp_path / name).read_text(), (
            f"deploy/kubernetes/{name} is stale: regenerate it (docs/kubernetes.md)"
        )


def kubectl() -> str:
    return shutil.which("kubectl") or missing_tool(
        "kubectl is not installed (Debian: kubernetes-client), needed for kustomize"
    )


def kustomize(directory: Path) -> List[dict]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(directory)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return [obj for obj in yaml.safe_load_all(result.stdout) if obj]


def test_kubectl_kustomize_builds_the_base_into_the_rendered_objects(tmp_path: Path) -> None:
    built = kustomize(BASE_DIR)
    files = [BASE_DIR / name for name in KUSTOMIZE_FILES.values()]
    rendered = {
        (obj["kind"], obj["metadata"]["name"]): obj
        for obj in (yaml.safe_load(path.read_text()) for path in files)
    }
    assert {(obj["kind"], obj["metadata"]["name"]) for obj in built} == set(rendered)
    for obj in built:
        assert obj == rendered[(obj["kind"], obj["metadata"]["name"])]
        kubernetes_validate.validate(obj, kubernetes_validate.latest_version(), strict=True)


def test_setting_the_image_in_a_copy_of_the_base_changes_both_places(tmp_path: Path) -> None:
    base = tmp_path / "base"
    shutil.copytree(BASE_DIR, base)
    kustomization = yaml.safe_load((base / "kustomization.yaml").read_text())
    kustomization["images"] = [
        {
            "name": kustomization["images"][0]["name"],
            "newName": "registry.example.org/agent",
            "newTag": "2.0",
        }
    ]
    (base / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    deployment = next(obj for obj in kustomize(base) if obj["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example.org/agent:2.0"
    assert (
        env_of(container)["BOOTSTRAP_KUBERNETES_IMAGE"]["value"] == "registry.example.org/agent:2.0"
    )
    (check,) = deployment["spec"]["template"]["spec"]["initContainers"]
    assert check["image"] == "registry.example.org/agent:2.0"  # the flow runs' image too


def test_the_pod_first_checks_that_flow_runs_reach_the_server() -> None:
    """The init container runs the flow runs' first request from their image, with the
    agent's API variables, retrying for the wait timeout; run here as it would run there."""
    settings = load_settings(
        {"agent_type": "kubernetes", "kubernetes_image": "reg/agent:1", "wait_timeout": 30,
         "kubernetes_api_key_secret": "prefect-key"}
    )  # fmt: skip
    objects = k8s.manifests(settings, "http://prefect-apollo.prefect:4200/graphql")
    pod_spec = objects[3]["spec"]["template"]["spec"]
    (check,) = pod_spec["initContainers"]
    assert check["image"] == "reg/agent:1"
    env = {item["name"]: item for item in check["env"]}
    assert env["PREFECT__CLOUD__API"]["value"] == "http://prefect-apollo.prefect:4200/graphql"
    assert env["PREFECT__CLOUD__API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "prefect-key"
    assert env["PROBE_RETRY_SECONDS"]["value"] == "30.0"
    assert check["securityContext"]["readOnlyRootFilesystem"] is True
    # the command itself, against nothing: it fails naming the URL, after its retries
    probe = {"PREFECT__CLOUD__API": "http://127.0.0.1:9/graphql", "PROBE_RETRY_SECONDS": "0"}
    command = check["command"]
    assert command[:2] == ["python", "-c"]
    result = subprocess.run(
        [sys.executable, "-c", command[2]], env=probe, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "flow runs cannot reach the Prefect Server at http://127.0.0.1:9/graphql" in (
        result.stderr
    )


def test_an_overlay_namespace_moves_the_agent_and_its_binding(tmp_path: Path) -> None:
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "namespace": "lume",
                "resources": [os.path.relpath(BASE_DIR, overlay)],
            }
        )
    )
    built = by_kind(kustomize(overlay))
    for kind in ("ServiceAccount", "Role", "RoleBinding", "Deployment"):
        assert built[kind]["metadata"]["namespace"] == "lume", kind
    assert built["RoleBinding"]["subjects"][0]["namespace"] == "lume"
