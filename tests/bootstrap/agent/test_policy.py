"""bootstrap.agent.policy: what a run config may ask of the Docker host or the cluster."""

from __future__ import annotations

import pytest

from bootstrap.agent.policy import Policy, check_host_config, check_job, within
from bootstrap.kubernetes.job_template import job_template
from bootstrap.settings import load_settings

AGENT = Policy(paths=("/flows", "/data/lume"), networks=("lume-net",), service_account="runner")


@pytest.mark.parametrize(
    ("host_config", "rule"),
    [
        ({"privileged": True}, "privileged"),
        ({"pid_mode": "host"}, "host-namespaces"),
        ({"ipc_mode": "container:db"}, "host-namespaces"),
        ({"userns_mode": "host"}, "host-namespaces"),
        ({"network_mode": "host"}, "host-namespaces"),
        ({"network_mode": "ops-internal"}, "network"),
        ({"cap_add": ["SYS_ADMIN"]}, "capabilities"),
        ({"devices": ["/dev/sda:/dev/sda"]}, "devices"),
        ({"device_requests": [{"Count": -1, "Capabilities": [["gpu"]]}]}, "devices"),
        ({"security_opt": ["seccomp=unconfined"]}, "security-options"),
        ({"security_opt": ["apparmor:unconfined"]}, "security-options"),
        ({"binds": ["/:/host:ro"]}, "binds"),
        ({"binds": {"/etc": {"bind": "/host-etc", "mode": "ro"}}}, "binds"),
        ({"binds": ["/var/run/docker.sock:/var/run/docker.sock"]}, "binds"),
        ({"binds": ["/data/lume/../../etc:/x"]}, "binds"),  # normalised before comparing
        ({"mounts": [{"Type": "bind", "Source": "/root", "Target": "/r"}]}, "binds"),
        ({"volumes_from": ["other"]}, "volumes-from"),
    ],
)
def test_docker_runs_asking_for_the_host_are_refused_by_rule(host_config, rule) -> None:
    refusal = check_host_config(host_config, AGENT)
    assert refusal is not None
    assert refusal.rule == rule
    assert f"rule {rule!r}" in refusal.message()
    assert f"BOOTSTRAP_FLOW_RUN_ALLOW={rule}" in refusal.message()
    assert check_host_config(host_config, Policy(allow=frozenset({rule}), paths=AGENT.paths,
                                                 networks=AGENT.networks)) is None  # fmt: skip
    assert check_host_config(host_config, Policy(allow=frozenset({"all"}))) is None


@pytest.mark.parametrize(
    "host_config",
    [
        {},
        {"auto_remove": True, "mem_limit": "2g", "cpu_quota": 50000, "shm_size": "1g"},
        {"network_mode": "lume-net"},  # the agent's own
        {"network_mode": "bridge"},
        {"network_mode": "none"},
        {"binds": ["/data/lume/run-1:/data:rw", "/flows:/flows:ro", "scratch:/scratch"]},
        {"security_opt": ["no-new-privileges"]},  # tightens
        {"mounts": [{"Type": "volume", "Source": "cache", "Target": "/c"}]},
    ],
)
def test_what_stays_within_the_agents_own_grants_passes(host_config) -> None:
    assert check_host_config(host_config, AGENT) is None


def test_paths_are_compared_whole() -> None:
    assert within("/data/lume/x", ["/data/lume"])
    assert not within("/data/lumen", ["/data/lume"])
    assert not within("/", ["/data"])
    assert within("/anything", ["/"])


def pod_job(**pod) -> dict:
    base = {"containers": [{"name": "flow", "image": "i"}]}
    return {"spec": {"template": {"spec": {**base, **pod}}}}


@pytest.mark.parametrize(
    ("job", "rule"),
    [
        (pod_job(hostNetwork=True), "host-namespaces"),
        (pod_job(hostPID=True), "host-namespaces"),
        (
            pod_job(containers=[{"name": "flow", "securityContext": {"privileged": True}}]),
            "privileged",
        ),
        (
            pod_job(
                containers=[{"name": "flow", "securityContext": {"allowPrivilegeEscalation": True}}]
            ),
            "privileged",
        ),
        (pod_job(securityContext={"runAsUser": 0}), "privileged"),
        (
            pod_job(
                initContainers=[
                    {"name": "init", "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}
                ]
            ),
            "capabilities",
        ),
        (
            pod_job(securityContext={"seccompProfile": {"type": "Unconfined"}}),
            "security-options",
        ),
        (pod_job(volumes=[{"name": "root", "hostPath": {"path": "/"}}]), "binds"),
        (pod_job(serviceAccountName="cluster-admin"), "service-account"),
    ],
)
def test_kubernetes_jobs_asking_for_the_node_are_refused_by_rule(job, rule) -> None:
    refusal = check_job(job, AGENT)
    assert refusal is not None
    assert refusal.rule == rule
    assert check_job(job, Policy(allow=frozenset({"all"}))) is None


def test_the_agents_own_job_template_passes() -> None:
    settings = load_settings(
        {"agent_type": "kubernetes", "kubernetes_service_account_name": "runner"}
    )
    assert check_job(job_template(settings), AGENT) is None
    allowed_host_path = pod_job(
        serviceAccountName="runner", volumes=[{"name": "d", "hostPath": {"path": "/data/lume"}}]
    )
    assert check_job(allowed_host_path, AGENT) is None


def test_resources_past_the_ceilings_are_refused_and_the_defaults_fill_in() -> None:
    from bootstrap.agent.command import docker_defaults, flow_run_policy

    settings = load_settings(
        {"flow_run_max_memory": "4g", "flow_run_max_cpus": 2, "docker_memory": "1g",
         "docker_shm_size": "256m"}
    )  # fmt: skip
    policy = Policy.from_dict(flow_run_policy(settings).to_dict())  # as the launcher gets it
    assert check_host_config({"mem_limit": "2g", "nano_cpus": 2 * 10**9}, policy) is None
    refusal = check_host_config({"mem_limit": "8g"}, policy)
    assert (refusal.rule, refusal.detail) == (
        "resources",
        "memory 8g is above the agent's ceiling (4096m)",
    )
    assert check_host_config({"cpu_quota": 300000, "cpu_period": 100000}, policy).detail == (
        "cpus 3.0 is above the agent's ceiling (2)"
    )
    lifted = Policy.from_dict({**policy.to_dict(), "allow": ["resources"]})
    assert check_host_config({"mem_limit": "8g"}, lifted) is None
    # every container: the default where given, else the ceiling; the run's own value wins
    assert docker_defaults(settings) == {
        "mem_limit": 2**30,
        "nano_cpus": 2 * 10**9,
        "shm_size": 256 * 2**20,
    }
