"""The flow-run policy: what a flow's run config may ask of the Docker host or the cluster.

Prefect's Docker agent hands a ``DockerRun``'s ``host_config`` to the engine as it is, and
its Kubernetes agent lets a ``KubernetesRun``'s ``job_template`` replace the agent's own:
whoever can register a flow can ask for a privileged container, the host's namespaces or
its root filesystem. The launcher checks each run before its container or Job is created
(:mod:`bootstrap.agent.hooks`); a refused run is set to Failed with the rule it broke,
and nothing is created. Pure functions of the request and the :class:`Policy`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, FrozenSet, Iterable, List, Mapping, Optional, Tuple

from bootstrap.settings.policy_rules import ALL, RULES  # noqa: F401  (RULES: re-exported)
from bootstrap.util.docker_units import parse_bytes, run_cpus

_SAFE_NETWORKS = ("bridge", "default", "none")
_NO_NEW_PRIVILEGES = ("no-new-privileges", "no-new-privileges:true", "no-new-privileges=true")


@dataclass(frozen=True)
class Policy:
    allow: FrozenSet[str] = frozenset()
    paths: Tuple[str, ...] = ()  # host paths flow runs may bind (and what is below them)
    networks: Tuple[str, ...] = ()  # the agent's own networks for flow runs
    service_account: Optional[str] = None  # the agent's own for flow-run Jobs
    # "memory" (bytes), "cpus", "pids" (Docker only) a flow run may ask for at most.
    ceilings: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Policy:
        return cls(
            allow=frozenset(data.get("allow", ())),
            paths=tuple(data.get("paths", ())),
            networks=tuple(data.get("networks", ())),
            service_account=data.get("service_account"),
            ceilings=dict(data.get("ceilings") or {}),
        )

    def to_dict(self) -> Dict[str, Any]:
        return {
            "allow": sorted(self.allow),
            "paths": list(self.paths),
            "networks": list(self.networks),
            "service_account": self.service_account,
            "ceilings": dict(self.ceilings),
        }

    def allows(self, rule: str) -> bool:
        return ALL in self.allow or rule in self.allow


@dataclass(frozen=True)
class Refusal:
    rule: str
    detail: str

    def message(self) -> str:
        return (
            f"refused by the agent's flow-run policy, rule {self.rule!r}: {self.detail}. "
            f"Only the agent's operator can allow it (BOOTSTRAP_FLOW_RUN_ALLOW={self.rule})"
        )


class PolicyRefusal(ValueError):
    """Raised where the agent deploys: prefect sets the run to Failed with this message."""


def within(path: str, allowed: Iterable[str]) -> bool:
    """``path`` is one of ``allowed`` or below one of them (after normalisation)."""
    path = os.path.normpath(path)
    for root in allowed:
        root = os.path.normpath(root)
        if path == root or path.startswith(root.rstrip("/") + "/"):
            return True
    return False


# Docker ---------------------------------------------------------------------------------


def _bind_sources(host_config: Mapping[str, Any]) -> List[str]:
    """Host paths of ``binds`` (list or dict form) and of bind ``mounts``."""
    sources: List[str] = []
    binds = host_config.get("binds") or []
    if isinstance(binds, Mapping):
        sources += [str(source) for source in binds]
    else:
        sources += [str(bind).split(":", 1)[0] for bind in binds]
    for mount in host_config.get("mounts") or []:
        if isinstance(mount, Mapping) and str(mount.get("Type", "volume")) == "bind":
            sources.append(str(mount.get("Source", "")))
    return sources


def _namespace(host_config: Mapping[str, Any]) -> Optional[str]:
    for key in ("pid_mode", "ipc_mode", "uts_mode", "userns_mode", "cgroupns"):
        value = str(host_config.get(key) or "")
        if value == "host" or value.startswith("container:"):
            return f"{key}={value}"
    return None


def check_host_config(host_config: Mapping[str, Any], policy: Policy) -> Optional[Refusal]:
    """A DockerRun's ``host_config`` (the docker SDK's ``create_host_config`` arguments)."""
    checks: List[Tuple[str, Optional[str]]] = []
    if host_config.get("privileged"):
        checks.append(("privileged", "privileged=True"))
    checks.append(("host-namespaces", _namespace(host_config)))
    network = str(host_config.get("network_mode") or "")
    if network and network not in policy.networks and network not in _SAFE_NETWORKS:
        rule = (
            "host-namespaces"
            if network == "host" or network.startswith("container:")
            else "network"
        )
        checks.append((rule, f"network_mode={network}"))
    if host_config.get("cap_add"):
        checks.append(("capabilities", f"cap_add={list(host_config['cap_add'])}"))
    for key in ("devices", "device_requests", "device_cgroup_rules"):
        if host_config.get(key):
            checks.append(("devices", f"{key} set"))
    loosened = [
        option
        for option in host_config.get("security_opt") or []
        if str(option).replace(" ", "") not in _NO_NEW_PRIVILEGES
    ]
    if loosened:
        checks.append(("security-options", f"security_opt={loosened}"))
    outside = [source for source in _bind_sources(host_config) if source.startswith("/")]
    outside = [source for source in outside if not within(source, policy.paths)]
    if outside:
        checks.append(("binds", f"host path(s) {', '.join(sorted(set(outside)))}"))
    if host_config.get("volumes_from"):
        checks.append(("volumes-from", f"volumes_from={list(host_config['volumes_from'])}"))
    checks.append(("resources", _above_ceilings(host_config, policy.ceilings)))
    for rule, detail in checks:
        if detail and not policy.allows(rule):
            return Refusal(rule, detail)
    return None


def _above_ceilings(host_config: Mapping[str, Any], ceilings: Mapping[str, float]) -> Optional[str]:
    """What a run's host_config asks past the agent's ceilings (none asked: the default
    applies, which is at most the ceiling)."""
    asked = {
        "memory": host_config.get("mem_limit"),
        "cpus": run_cpus(host_config),
        "pids": host_config.get("pids_limit"),
    }
    for name, value in asked.items():
        ceiling = ceilings.get(name)
        if ceiling is None or value is None:
            continue
        try:
            amount = parse_bytes(value) if name == "memory" else float(value)
        except ValueError:
            return f"{name} {value!r} is not a quantity Docker reads"
        if amount > ceiling or amount <= 0:  # 0 or -1: no limit, to Docker
            return f"{name} {value} is above the agent's ceiling ({_show(name, ceiling)})"
    return None


def _show(name: str, ceiling: float) -> str:
    return f"{ceiling / 2**20:.0f}m" if name == "memory" else f"{ceiling:g}"


# Kubernetes ---------------------------------------------------------------------------------


def _containers(pod: Mapping[str, Any]) -> List[Mapping[str, Any]]:
    found: List[Mapping[str, Any]] = []
    for key in ("initContainers", "containers", "ephemeralContainers"):
        found += [c for c in pod.get(key) or [] if isinstance(c, Mapping)]
    return found


def check_job(job: Mapping[str, Any], policy: Policy) -> Optional[Refusal]:
    """The Job prefect's Kubernetes agent is about to create for a run (its template merged
    with the run config)."""
    pod = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
    checks: List[Tuple[str, Optional[str]]] = []
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            checks.append(("host-namespaces", f"{key}: true"))
    contexts = [("pod", pod.get("securityContext") or {})]
    contexts += [(c.get("name", "?"), c.get("securityContext") or {}) for c in _containers(pod)]
    for name, context in contexts:
        if context.get("privileged"):
            checks.append(("privileged", f"container {name}: privileged"))
        if context.get("allowPrivilegeEscalation"):
            checks.append(("privileged", f"container {name}: allowPrivilegeEscalation"))
        if context.get("runAsUser") == 0:
            checks.append(("privileged", f"{name}: runAsUser 0"))
        if (context.get("capabilities") or {}).get("add"):
            checks.append(("capabilities", f"container {name}: capabilities.add"))
        for key in ("seccompProfile", "appArmorProfile"):
            if (context.get(key) or {}).get("type") == "Unconfined":
                checks.append(("security-options", f"{name}: {key} Unconfined"))
    for volume in pod.get("volumes") or []:
        path = ((volume or {}).get("hostPath") or {}).get("path")
        if path and not within(str(path), policy.paths):
            checks.append(("binds", f"hostPath {path}"))
    account = pod.get("serviceAccountName") or pod.get("serviceAccount")
    if account and account != policy.service_account:
        checks.append(("service-account", f"serviceAccountName {account}"))
    for container in [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]:
        checks.append(("resources", _limits_above_ceilings(container, policy.ceilings)))
    for rule, detail in checks:
        if detail and not policy.allows(rule):
            return Refusal(rule, detail)
    return None


def _limits_above_ceilings(
    container: Mapping[str, Any], ceilings: Mapping[str, float]
) -> Optional[str]:
    """What a Job's container asks past the ceilings: a limit above one, or no limit (the
    agent's template sets the ceiling as the default; a run's own template may not)."""
    from kubernetes.utils import parse_quantity

    limits = (container.get("resources") or {}).get("limits") or {}
    name = container.get("name", "?")
    for resource, key in (("memory", "memory"), ("cpus", "cpu")):
        ceiling = ceilings.get(resource)
        if ceiling is None:
            continue
        shown = f"{ceiling / 2**20:.0f}Mi" if resource == "memory" else f"{ceiling:g}"
        if key not in limits:
            return f"container {name}: no {key} limit, above the agent's ceiling ({shown})"
        try:
            amount = float(parse_quantity(limits[key]))
        except ValueError:
            return f"container {name}: {key} limit {limits[key]!r} is not a Kubernetes quantity"
        if amount > ceiling:
            asked = limits[key]
            return f"container {name}: {key} limit {asked} is above the agent's ceiling ({shown})"
    return None
