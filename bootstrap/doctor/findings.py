"""What ``prefect-agent-bootstrap doctor`` concludes from what it saw (:class:`Facts`): plain
lines, each ``ok``, ``note`` or ``PROBLEM``. Pure functions: the facts come from
:mod:`bootstrap.doctor.facts`.

The reasons a run cannot start, as Prefect 1.x decides them:

- **Late** (Scheduled, its start time past): an agent takes a run only if the run's labels
  are a subset of its own, and an unlabeled run only if the agent has no labels either; an
  agent counts if it queried the server recently (``ACTIVE_WITHIN``).
- **Submitted** too long: an agent deployed it, but its flow-run container never reported
  (it cannot reach the API, or died before prefect's flow runner started); Lazarus
  reschedules such a run after 10 minutes without a heartbeat, and fails it after 3 tries.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

ACTIVE_WITHIN = 300.0  # seconds since an agent's last query for it to count as running
LAZARUS_WINDOW = 600.0  # Prefect Server's lazarus: 10 minutes without a heartbeat


@dataclass
class Facts:
    """What the doctor saw (API rows as the server returns them, timestamps parsed)."""

    url: str
    now: datetime.datetime
    server: Dict[str, Any] = field(default_factory=dict)  # query { api { ... } }
    tenants: List[Dict[str, Any]] = field(default_factory=list)
    projects: List[Dict[str, Any]] = field(default_factory=list)
    agents: List[Dict[str, Any]] = field(default_factory=list)
    late: List[Dict[str, Any]] = field(default_factory=list)
    submitted: List[Dict[str, Any]] = field(default_factory=list)
    flow_versions: Dict[str, List[str]] = field(default_factory=dict)  # version -> flow names
    image_versions: Dict[str, Optional[str]] = field(default_factory=dict)  # image -> prefect
    tenant_from_env: bool = False


@dataclass(frozen=True)
class Finding:
    level: str  # "ok", "note", "PROBLEM"
    text: str
    details: Sequence[str] = ()

    def lines(self) -> List[str]:
        return [f"{self.level:<8}{self.text}", *(f"{'':<10}{line}" for line in self.details)]


def ago(then: Optional[datetime.datetime], now: datetime.datetime) -> str:
    if then is None:
        return "never"
    seconds = max(0.0, (now - then).total_seconds())
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def labels(values: Optional[Sequence[str]]) -> str:
    return "[" + ", ".join(sorted(values or [])) + "]"


def can_take(agent_labels: Sequence[str], run_labels: Sequence[str]) -> bool:
    """Prefect 1.x's rule: the run's labels within the agent's; none only with none."""
    if not run_labels:
        return not agent_labels
    return set(run_labels) <= set(agent_labels)


def active(agent: Dict[str, Any], now: datetime.datetime) -> bool:
    last = agent.get("last_queried")
    return last is not None and (now - last).total_seconds() <= ACTIVE_WITHIN


def server_findings(facts: Facts) -> List[Finding]:
    version = facts.server.get("version") or "unknown"
    core = facts.server.get("core_version") or "unknown"
    found = [Finding("ok", f"server {facts.url} answers (server {version}, core {core})")]
    if not facts.tenants:
        found.append(Finding("PROBLEM", "no tenant: agents cannot register (create one)"))
    for tenant in facts.tenants:
        names = sorted(p["name"] for p in facts.projects if p.get("tenant_id") == tenant["id"])
        shown = ", ".join(names) if names else "none"
        found.append(Finding("ok", f"tenant {tenant['name']} ({tenant['slug']}): projects {shown}"))
    if len(facts.tenants) > 1 and not facts.tenant_from_env:
        found.append(
            Finding(
                "note",
                f"{len(facts.tenants)} tenants: a client without PREFECT__CLOUD__TENANT_ID "
                "takes whichever the server lists first",
            )
        )
    return found


def agent_findings(facts: Facts) -> List[Finding]:
    found = []
    for agent in sorted(facts.agents, key=lambda a: a.get("name") or ""):
        level = "ok" if active(agent, facts.now) else "note"
        found.append(
            Finding(
                level,
                f"agent {agent.get('name')} ({agent.get('type')}, prefect "
                f"{agent.get('core_version') or '?'}) labels {labels(agent.get('labels'))}, "
                f"last queried {ago(agent.get('last_queried'), facts.now)}",
            )
        )
    if not any(active(agent, facts.now) for agent in facts.agents):
        found.append(Finding("PROBLEM", "no agent has queried the server recently"))
    return found


def late_findings(facts: Facts) -> List[Finding]:
    found = []
    running = [agent for agent in facts.agents if active(agent, facts.now)]
    tenant_names = {tenant["id"]: tenant["name"] for tenant in facts.tenants}
    for run in facts.late:
        wanted = run.get("labels") or []
        tenant = run.get("tenant_id")
        here = [a for a in running if a.get("tenant_id") == tenant]
        takers = [a for a in here if can_take(a.get("labels") or [], wanted)]
        head = (
            f"flow run {run['id']} ({_flow(run)}) Late: {run.get('state') or 'Scheduled'} "
            f"since {ago(run.get('state_start_time'), facts.now)}"
        )
        elsewhere = [
            a for a in running if a not in here and can_take(a.get("labels") or [], wanted)
        ]
        if not takers and elsewhere:
            polled = ", ".join(
                f"{a.get('name')} (tenant {tenant_names.get(a['tenant_id'], a['tenant_id'])})"
                for a in elsewhere
            )
            why = [
                f"agent(s) {polled} have its labels but poll another tenant than the run's, "
                f"{tenant_names.get(tenant, tenant)}: set BOOTSTRAP_TENANT (or "
                "PREFECT__CLOUD__TENANT_ID) on the agent"
            ]
            found.append(Finding("PROBLEM", head + ": no agent of its tenant has its labels", why))
            continue
        if takers:
            taken_by = ", ".join(sorted(a.get("name") or "?" for a in takers))
            why = (
                f"agent(s) {taken_by} match its labels but have not taken it: at their flow-run "
                "limit (BOOTSTRAP_AGENT_MAX_FLOW_RUNS), or behind on a long queue"
            )
            found.append(Finding("note", head, [why]))
            continue
        details = [f"run labels:   {labels(wanted)}"]
        for agent in here:
            missing = sorted(set(wanted) - set(agent.get("labels") or []))
            lack = f" lacks {', '.join(missing)}" if missing else " has labels, the run none"
            details.append(f"agent {agent.get('name')}: {labels(agent.get('labels'))}{lack}")
        if not here:
            details.append("no agent of its tenant is running")
        found.append(Finding("PROBLEM", head + ": no running agent has its labels", details))
    return found


def submitted_findings(facts: Facts, window: float = LAZARUS_WINDOW) -> List[Finding]:
    found = []
    for run in facts.submitted:
        since = run.get("state_timestamp")
        beyond = since is not None and (facts.now - since).total_seconds() >= window
        why = [
            "its flow-run container never reported: it cannot reach the API, or it died "
            "before prefect's flow runner started (docker logs prefect-flow-run-"
            f"{run['id']} on the agent's host)",
            "Lazarus reschedules it after 10 minutes without a heartbeat"
            + (" (past that now)" if beyond else ""),
        ]
        found.append(
            Finding(
                "PROBLEM",
                f"flow run {run['id']} ({_flow(run)}) stuck in Submitted since "
                f"{ago(since, facts.now)}",
                why,
            )
        )
    return found


def version_findings(facts: Facts) -> List[Finding]:
    agents = sorted({a.get("core_version") for a in facts.agents if a.get("core_version")})
    flows = sorted(facts.flow_versions)
    images = {image: v for image, v in facts.image_versions.items() if v}
    parts = [
        f"agents {', '.join(agents) or '?'}",
        f"flows registered with {', '.join(flows) or '?'}",
    ]
    if images:
        parts.append("images " + ", ".join(f"{i} {v}" for i, v in sorted(images.items())))
    minors = {_minor(v) for v in [*agents, *flows, *images.values()]}
    level = "ok" if len(minors) <= 1 else "note"
    details = ["different prefect 1.x lines side by side: a flow's runner is its image's prefect"]
    return [
        Finding(level, "prefect versions: " + "; ".join(parts), details if level != "ok" else ())
    ]


def findings(facts: Facts) -> List[Finding]:
    return [
        *server_findings(facts),
        *agent_findings(facts),
        *late_findings(facts),
        *submitted_findings(facts),
        *version_findings(facts),
    ]


def _flow(run: Dict[str, Any]) -> str:
    return f"flow {((run.get('flow') or {}).get('name')) or '?'}"


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])
