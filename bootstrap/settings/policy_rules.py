"""The flow-run policy's rules, by name: what BOOTSTRAP_FLOW_RUN_ALLOW may lift. The rules
are enforced by :mod:`bootstrap.agent.policy`; they are named here, with the setting."""

from __future__ import annotations

from typing import Dict

# rule -> what it stops (the setting BOOTSTRAP_FLOW_RUN_ALLOW lifts rules by name).
RULES: Dict[str, str] = {
    "privileged": "privileged containers, privilege escalation, root (Kubernetes)",
    "host-namespaces": "the host's network, PID, IPC, UTS, user or cgroup namespace, or another "
    "container's",
    "network": "Docker networks other than the agent's own",
    "capabilities": "added Linux capabilities",
    "devices": "host devices, GPUs (device requests) and device cgroup rules",
    "security-options": "security options: seccomp, AppArmor, SELinux labels",
    "binds": "host paths other than the agent's own volumes and the allowed paths",
    "volumes-from": "another container's volumes",
    "service-account": "a Kubernetes service account other than the agent's",
    "resources": "memory, CPUs or PIDs above the agent's ceilings (BOOTSTRAP_FLOW_RUN_MAX_*)",
}
ALL = "all"
