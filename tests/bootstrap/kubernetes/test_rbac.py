"""The agent's Role grants exactly what prefect 1.2.4's KubernetesAgent calls: derived here.

From the source of prefect/agent/kubernetes/agent.py (``ast``): which kubernetes client each
``self.<x>_client`` is (``get_kubernetes_client("job")`` -> ``K8S_CLIENTS["job"]``), and every
method called on those clients. For each method, the kubernetes client's own
``<method>_with_http_info`` holds the request it sends (``'/apis/batch/v1/namespaces/
{namespace}/jobs', 'POST'``); Kubernetes' request-info rules turn that into the
(API group, resource[/subresource], verb) that RBAC checks.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path
from typing import Dict, Set, Tuple

import kubernetes.client
import prefect.agent.kubernetes.agent as prefect_k8s_agent
import pytest
import yaml
from prefect.utilities.kubernetes import K8S_CLIENTS

from bootstrap.kubernetes import manifests as k8s
from bootstrap.settings import load_settings

AGENT_SOURCE = Path(prefect_k8s_agent.__file__)
Permission = Tuple[str, str, str]  # (apiGroup, resource, verb)


def client_attributes(tree: ast.AST) -> Dict[str, type]:
    """``self.batch_client = get_kubernetes_client("job", ...)`` -> {"batch_client": BatchV1Api}."""
    clients = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)):
            continue
        func = node.value.func
        if getattr(func, "id", getattr(func, "attr", None)) != "get_kubernetes_client":
            continue
        (target,) = node.targets
        kind = node.value.args[0]
        assert isinstance(target, ast.Attribute)
        assert isinstance(kind, ast.Constant)
        clients[target.attr] = K8S_CLIENTS[kind.value]
    return clients


def client_calls(tree: ast.AST, clients: Dict[str, type]) -> Set[Tuple[str, str, bool]]:
    """(client attribute, method, watch=True given) for each ``self.<client>.<method>(...)``."""
    calls = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner = node.func.value
        if isinstance(owner, ast.Attribute) and owner.attr in clients:
            watch = any(
                kw.arg == "watch" and getattr(kw.value, "value", None) is True
                for kw in node.keywords
            )
            calls.add((owner.attr, node.func.attr, watch))
    return calls


def request_of(client: type, method: str) -> Tuple[str, str]:
    """The (path, HTTP method) a kubernetes client method sends, from the client's source."""
    source = inspect.getsource(getattr(client, f"{method}_with_http_info"))
    (match,) = re.findall(r"call_api\(\s*'([^']+)',\s*'([A-Z]+)'", source)
    return match


def permission_of(path: str, http_method: str, watch: bool) -> Permission:
    """Kubernetes' RequestInfo: /api/v1 or /apis/GROUP/VERSION, namespaces/NS, RESOURCE,
    [NAME, [SUBRESOURCE]]; GET on a collection is list (or watch), DELETE one is delete."""
    parts = path.strip("/").split("/")
    if parts[0] == "api":
        group, rest = "", parts[2:]
    else:
        group, rest = parts[1], parts[3:]
    if rest[:1] == ["namespaces"] and len(rest) > 2:
        rest = rest[2:]
    resource, name, subresource = [*rest, None, None][:3]
    verbs = {
        ("GET", False): "watch" if watch else "list",
        ("GET", True): "get",
        ("POST", False): "create",
        ("PUT", True): "update",
        ("PATCH", True): "patch",
        ("DELETE", True): "delete",
        ("DELETE", False): "deletecollection",
    }
    verb = verbs[(http_method, name is not None)]
    return group, f"{resource}/{subresource}" if subresource else resource, verb


def needed_permissions() -> Dict[Permission, str]:
    tree = ast.parse(AGENT_SOURCE.read_text())
    clients = client_attributes(tree)
    needed: Dict[Permission, str] = {}
    for attr, method, watch in client_calls(tree, clients):
        path, http_method = request_of(clients[attr], method)
        needed[permission_of(path, http_method, watch)] = f"{attr}.{method}"
    return needed


def granted(role: dict) -> Set[Permission]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_the_source_analysis_finds_the_agents_calls() -> None:
    tree = ast.parse(AGENT_SOURCE.read_text())
    clients = client_attributes(tree)
    assert clients == {
        "batch_client": kubernetes.client.BatchV1Api,
        "core_client": kubernetes.client.CoreV1Api,
    }
    methods = {method for _, method, _ in client_calls(tree, clients)}
    # a guard against a parser that finds nothing and so "proves" any Role right
    assert {"create_namespaced_job", "list_namespaced_job", "delete_namespaced_job"} <= methods
    assert {"list_namespaced_pod", "list_namespaced_event"} <= methods


def test_request_mapping_follows_kubernetes_rules() -> None:
    core = kubernetes.client.CoreV1Api
    assert permission_of(*request_of(core, "read_namespaced_pod_log"), False) == (
        "",
        "pods/log",
        "get",
    )
    assert permission_of(
        *request_of(kubernetes.client.BatchV1Api, "read_namespaced_job_status"), False
    ) == (
        "batch",
        "jobs/status",
        "get",
    )
    assert permission_of(*request_of(core, "list_namespaced_pod"), True) == ("", "pods", "watch")


@pytest.mark.parametrize(
    "values", [{}, {"kubernetes_namespace": "flows", "kubernetes_agent_namespace": "agents"}]
)
def test_role_grants_exactly_what_the_agent_calls(values: dict) -> None:
    settings = load_settings({"kubernetes_image": "prefect-agent:1", **values})
    (role,) = [
        obj for obj in k8s.manifests(settings, "http://prefect:4200") if obj["kind"] == "Role"
    ]
    needed = needed_permissions()
    have = granted(role)
    missing = {perm: call for perm, call in needed.items() if perm not in have}
    assert not missing, f"the Role lacks what these calls need: {missing}"
    extra = have - set(needed)
    assert not extra, f"the Role grants what the agent never uses: {sorted(extra)}"
    text = yaml.safe_dump(role)
    assert "'*'" not in text
    assert "resourceNames" not in text
    for rule in role["rules"]:
        assert set(rule) == {"apiGroups", "resources", "verbs"}
        assert "*" not in rule["apiGroups"] + rule["resources"] + rule["verbs"]


def test_the_derived_permissions_are_the_documented_ones() -> None:
    """What the README and bootstrap/kubernetes.py say the agent needs, and why not more."""
    needed = set(needed_permissions())
    assert needed == {
        ("batch", "jobs", "create"),
        ("batch", "jobs", "list"),
        ("batch", "jobs", "delete"),
        ("", "pods", "list"),
        ("", "events", "list"),
    }
    # prefect 1.2.4's agent reads job and pod status from those lists and never reads logs
    assert ("batch", "jobs/status", "get") not in needed
    assert ("", "pods/log", "get") not in needed


def test_prefects_own_rbac_is_broader_than_needed() -> None:
    """`prefect agent kubernetes install --rbac` grants every verb: the weak anchor."""
    rbac = list(yaml.safe_load_all((AGENT_SOURCE.parent / "rbac.yaml").read_text()))
    role = next(doc for doc in rbac if doc["kind"] == "Role")
    assert any("*" in rule["verbs"] for rule in role["rules"])
