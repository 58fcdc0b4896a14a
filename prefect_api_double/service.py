"""Resolvers of the GraphQL-service half of the schema (mutations and a few queries).

Each function here reproduces, in its own code, the observable behaviour of the real
Prefect Server's resolver and ``api`` function of the same name (PrefectHQ/server,
``src/prefect_server/graphql/*.py`` and ``src/prefect_server/api/*.py``): the same
inputs, the same database effects, the same error messages. Notably, like the
open-source server (and unlike Prefect Cloud), ``set_flow_run_states`` and
``set_task_run_states`` accept any ``version``: the server documents the argument as
"only for Cloud API compatibility" and always writes ``run.version + 1``.

States are (de)serialized with Prefect Core's own ``StateSchema``, as the server does.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import gzip
import json
import random
import re
import sys
import threading
import time
import uuid
from base64 import b64decode
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

import pendulum
from slugify import slugify

from .hasura import compile_where, parse_timestamptz, select
from .store import (
    FOREIGN_KEY_VIOLATION,
    ForeignKeyViolation,
    NotNullViolation,
    Store,
    StringTooLong,
    UniquenessViolation,
    now,
)

if TYPE_CHECKING:
    from prefect.engine.state import State

QUEUED_RUNS_RETURNED_LIMIT = 25  # prefect_server config.queued_runs_returned_limit
CORE_VERSION_CUTOFF = (0, 6, 1)
STATE_PAYLOAD_LIMIT = 1_000_000
ARTIFACT_PAYLOAD_LIMIT = 1_000_000
API_ERROR_MESSAGE = "Unable to complete operation. An internal API error occurred."


class ExpiringSet:
    """Names remembered for ``duration`` seconds (the server's Submitted-state lock)."""

    def __init__(self, duration: float = 30.0) -> None:
        self.duration = duration
        self._items: Dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, name: str) -> bool:
        """Add ``name``; False if it was already present and not expired."""
        with self._lock:
            current = time.monotonic()
            self._items = {k: t for k, t in self._items.items() if t > current}
            if name in self._items:
                return False
            self._items[name] = current + self.duration
            return True


class Context:
    """What resolvers get as ``info.context``."""

    def __init__(
        self,
        store: Store,
        headers: Dict[str, str],
        submitted_lock: ExpiringSet,
    ) -> None:
        self.store = store
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.submitted_lock = submitted_lock

    def header(self, name: str) -> Optional[str]:
        return self.headers.get(name.lower())


def _ctx(info: Any) -> Context:
    return info.context


def _db(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a store operation; database errors surface as the server's Hasura client
    reports them (``Uniqueness violation.`` / ``Foreign key violation.`` / the raw
    Hasura error list for anything else)."""
    try:
        return func(*args, **kwargs)
    except (UniquenessViolation, ForeignKeyViolation):
        raise
    except NotNullViolation as exc:
        raise ValueError(_hasura_errors(str(exc), "constraint-violation")) from None
    except StringTooLong as exc:
        raise ValueError(_hasura_errors(str(exc), "data-exception")) from None


def _hasura_errors(message: str, code: str) -> str:
    # other database errors reach the client as the str() of Hasura's error list
    return str([{"extensions": {"path": "$", "code": code}, "message": message}])


def _uuid_or_none(value: Any) -> Optional[str]:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return None


def _to_utc(value: Any) -> Optional[datetime.datetime]:
    if value is None:
        return None
    return parse_timestamptz(value)


def _json_or_none(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return None
    return value


# Prefect Core is imported on first use: importing it takes seconds, and a double that
# only creates tenants and projects (e.g. for bootstrap tests) starts without it.


@functools.cache
def _states() -> Any:
    from prefect.engine import state

    return state


@functools.cache
def _state_schema() -> Any:
    from prefect.serialization.state import StateSchema

    return StateSchema()


@functools.cache
def scheduled_state_names() -> List[str]:
    """States the queue treats as ready to run: Scheduled, Queued and their subclasses."""
    states = _states()
    return sorted(
        obj.__name__
        for obj in states.__dict__.values()
        if isinstance(obj, type) and issubclass(obj, (states.Scheduled, states.Queued))
    )


def _load_state(serialized: Any) -> State:
    return _state_schema().load(serialized)


# ===================================================================== queries


def resolve_hello(obj: Any, info: Any) -> str:
    return "\N{WAVING HAND SIGN}"


def resolve_api(obj: Any, info: Any) -> dict:
    return {
        "backend": "SERVER",
        "mode": "normal",
        "version": "prefect-api-double",
        "core_version": _prefect_version(),
        "release_timestamp": None,
    }


def _prefect_version() -> str:
    import prefect

    return prefect.__version__


def resolve_reference_data(obj: Any, info: Any) -> dict:
    prefect_states = _states()
    hierarchy: Dict[str, List[str]] = {}
    state_info: Dict[str, dict] = {}
    for obj_ in prefect_states.__dict__.values():
        if isinstance(obj_, type) and issubclass(obj_, prefect_states.State):
            for parent in obj_.mro():
                if isinstance(parent, type) and issubclass(parent, prefect_states.State):
                    hierarchy.setdefault(parent.__name__, []).append(obj_.__name__)
            state_info[obj_.__name__] = {"color": obj_.color}
    return {"state_hierarchy": hierarchy, "state_info": state_info}


def resolve_get_task_run_info(obj: Any, info: Any, task_run_id: str) -> dict:
    task_run = _ctx(info).store.get("task_run", task_run_id)
    if not task_run:
        raise ValueError("Invalid task run ID")
    return {
        "id": task_run_id,
        "version": task_run["version"],
        "serialized_state": task_run["serialized_state"],
        "state": task_run["state"],
    }


def resolve_mapped_children(obj: Any, info: Any, task_run_id: str) -> dict:
    store = _ctx(info).store
    reference = store.get("task_run", task_run_id)
    children = []
    if reference is not None and reference["map_index"] < 0:
        children = [
            tr
            for tr in store.all("task_run")
            if tr["flow_run_id"] == reference["flow_run_id"]
            and tr["task_id"] == reference["task_id"]
            and tr["map_index"] >= 0
        ]
    starts = [tr["start_time"] for tr in children if tr["start_time"] is not None]
    ends = [tr["end_time"] for tr in children if tr["end_time"] is not None]
    counts: Dict[str, int] = {}
    for tr in children:
        counts[tr["state"]] = counts.get(tr["state"], 0) + 1
    return {
        "min_start_time": min(starts) if starts else None,
        "max_end_time": max(ends) if ends else None,
        "state_counts": counts,
    }


# ===================================================================== tenants


def resolve_create_tenant(obj: Any, info: Any, input: dict) -> dict:
    name = input["name"]
    slug = input.get("slug")
    if slug is None:
        slug = slugify(name)
    if slug != slugify(slug):
        raise ValueError('Slug must be "slugified" (lowercase; no spaces)')
    row = _db(_ctx(info).store.insert, "tenant", {"name": name, "slug": slug})
    return {"id": row["id"]}


def resolve_delete_tenant(obj: Any, info: Any, input: dict) -> dict:
    if not input.get("confirm"):
        raise ValueError("Must pass `confirm=True` to proceed.")
    return {"success": _ctx(info).store.delete("tenant", input["tenant_id"])}


# ===================================================================== projects


def resolve_create_project(obj: Any, info: Any, input: dict) -> dict:
    row = _db(
        _ctx(info).store.insert,
        "project",
        {
            "tenant_id": input["tenant_id"],
            "name": input["name"],
            "description": input.get("description"),
        },
    )
    return {"id": row["id"]}


def resolve_delete_project(obj: Any, info: Any, input: dict) -> dict:
    return {"success": _ctx(info).store.delete("project", input["project_id"])}


def resolve_set_project_name(obj: Any, info: Any, input: dict) -> dict:
    row = _db(_ctx(info).store.update, "project", input["project_id"], {"name": input["name"]})
    if not row:
        raise ValueError("Update failed")
    return {"id": input["project_id"]}


def resolve_set_project_description(obj: Any, info: Any, input: dict) -> dict:
    row = _ctx(info).store.update(
        "project", input["project_id"], {"description": input.get("description")}
    )
    if not row:
        raise ValueError("Update failed")
    return {"id": input["project_id"]}


# ===================================================================== agents


def resolve_register_agent(obj: Any, info: Any, input: dict) -> dict:
    ctx = _ctx(info)
    store = ctx.store
    tenant_id = input.get("tenant_id")
    labels = sorted(input.get("labels") or [])
    name = input.get("name")
    agent_type = input["type"]
    core_version = ctx.header("x-prefect-core-version")
    if not tenant_id:
        tenants = store.all("tenant")
        if not tenants:
            raise ValueError("No tenant found.")
        tenant_id = tenants[0]["id"]
    # the real server looks for an identical agent with Hasura `_eq` filters; a null
    # value in such a filter matches everything, which this where-clause reproduces
    where = {
        "_and": [
            {"tenant_id": {"_eq": tenant_id}},
            {"name": {"_eq": name}},
            {"type": {"_eq": agent_type}},
            {"core_version": {"_eq": core_version}},
            {"labels": {"_eq": labels}},
        ]
    }
    predicate = compile_where(store, "agent", where)
    for agent in store.all("agent"):
        if predicate(agent) is True:
            return {"id": agent["id"]}
    row = _db(
        store.insert,
        "agent",
        {
            "tenant_id": tenant_id,
            "agent_config_id": input.get("agent_config_id"),
            "labels": labels,
            "name": name,
            "type": agent_type,
            "core_version": core_version,
        },
    )
    return {"id": row["id"]}


def resolve_delete_agent(obj: Any, info: Any, input: dict) -> dict:
    return {"success": _ctx(info).store.delete("agent", input["agent_id"])}


# ===================================================================== flows


def _decompress(value: str) -> Any:
    return json.loads(gzip.decompress(b64decode(value)).decode("utf-8"))


def resolve_create_flow_from_compressed_string(obj: Any, info: Any, input: dict) -> dict:
    try:
        serialized_flow = _decompress(input["serialized_flow"])
    except Exception:
        raise TypeError("Unable to decompress serialized flow") from None
    return resolve_create_flow(obj, info, dict(input, serialized_flow=serialized_flow))


def _version_tuple(text: str) -> tuple:
    parts = []
    for piece in re.split(r"[.+]", text):
        match = re.match(r"\d+", piece)
        if not match:
            break
        parts.append(int(match.group()))
    return tuple(parts)


def resolve_create_flow(obj: Any, info: Any, input: dict) -> dict:
    store = _ctx(info).store
    serialized_flow = input["serialized_flow"]
    project_id = input["project_id"]
    version_group_id = input.get("version_group_id")
    set_schedule_active = input.get("set_schedule_active", True)
    if not isinstance(serialized_flow, dict):
        raise ValueError("serialized_flow: value is not a valid dict")

    # without a version group, a flow with the same name in the same project shares its group
    if not version_group_id:
        same_name = [
            f
            for f in store.all("flow")
            if f["project_id"] == project_id and f["name"] == serialized_flow.get("name")
        ]
        if same_name:
            version_group_id = max(same_name, key=lambda f: f["created"])["version_group_id"]

    flow_id = create_flow(
        store,
        serialized_flow=serialized_flow,
        project_id=project_id,
        version_group_id=version_group_id,
        set_schedule_active=set_schedule_active,
        description=input.get("description"),
        idempotency_key=input.get("idempotency_key"),
    )

    flow = store.get("flow", flow_id)
    for other in store.all("flow"):
        if (
            other["version_group_id"] == flow["version_group_id"]
            and other["id"] != flow_id
            and not other["archived"]
        ):
            archive_flow(store, other["id"])
    return {"id": flow_id}


def create_flow(
    store: Store,
    serialized_flow: dict,
    project_id: str,
    version_group_id: Optional[str] = None,
    set_schedule_active: bool = True,
    description: Optional[str] = None,
    idempotency_key: Optional[str] = None,
) -> str:
    core_version = serialized_flow.get("__version__")
    if core_version and _version_tuple(core_version) < CORE_VERSION_CUTOFF:
        raise ValueError(
            "Prefect backends require new flows to be built with Prefect 0.6.1+, but this "
            f"flow was built with Prefect {core_version}."
        )
    project = store.get("project", project_id)
    if not project:
        raise ValueError("Invalid project.")
    tenant_id = project["tenant_id"]
    version_group_id = version_group_id or str(uuid.uuid4())

    flow_group = next(
        (
            g
            for g in store.all("flow_group")
            if g["tenant_id"] == tenant_id and g["name"] == version_group_id
        ),
        None,
    )
    if flow_group is None:
        flow_group = _db(
            store.insert,
            "flow_group",
            {
                "tenant_id": tenant_id,
                "name": version_group_id,
                "settings": {
                    "heartbeat_enabled": True,
                    "lazarus_enabled": True,
                    "version_locking_enabled": False,
                    "idempotency_key": idempotency_key,
                },
            },
        )
    else:
        last_key = (flow_group["settings"] or {}).get("idempotency_key")
        if last_key and idempotency_key and last_key == idempotency_key:
            candidates = [
                f
                for f in store.all("flow")
                if f["version_group_id"] == version_group_id and not f["archived"]
            ]
            if candidates:
                return max(candidates, key=lambda f: f["version"] or 0)["id"]
        settings = dict(flow_group["settings"] or {}, idempotency_key=idempotency_key)
        store.update("flow_group", flow_group["id"], {"settings": settings})

    versions = [
        f["version"] or 0
        for f in store.all("flow")
        if f["version_group_id"] == version_group_id and f["tenant_id"] == tenant_id
    ]
    version = max(versions, default=0)

    if serialized_flow.get("schedule") is None and flow_group.get("schedule") is None:
        set_schedule_active = False

    flow = _db(
        store.insert,
        "flow",
        {
            "tenant_id": tenant_id,
            "project_id": project_id,
            "name": serialized_flow.get("name"),
            "serialized_flow": serialized_flow,
            "environment": serialized_flow.get("environment"),
            "run_config": serialized_flow.get("run_config"),
            "core_version": core_version,
            "storage": serialized_flow.get("storage"),
            "parameters": serialized_flow.get("parameters") or [],
            "version_group_id": version_group_id,
            "version": version + 1,
            "archived": False,
            "flow_group_id": flow_group["id"],
            "description": description,
            "schedule": serialized_flow.get("schedule"),
            "is_schedule_active": False,
        },
    )
    try:
        register_tasks(store, flow["id"], tenant_id, serialized_flow.get("tasks") or [])
        register_edges(store, flow["id"], tenant_id, serialized_flow.get("edges") or [])
    except Exception:
        store.delete("flow", flow["id"])
        raise ValueError(API_ERROR_MESSAGE) from None

    if set_schedule_active:
        # the server logs and ignores a failure here
        with contextlib.suppress(Exception):
            set_schedule_active_(store, flow["id"])
    return flow["id"]


def _trigger_name(value: Any) -> Optional[str]:
    return value.get("fn") if isinstance(value, dict) else value


def _slug_of(value: Any) -> Any:
    return value.get("slug") if isinstance(value, dict) else value


def register_tasks(store: Store, flow_id: str, tenant_id: Optional[str], tasks: Any) -> None:
    if not isinstance(tasks, list):
        raise ValueError("serialized_tasks: value is not a valid list")
    for task in tasks:
        if not isinstance(task, dict) or not task.get("slug"):
            raise ValueError("slug: field required")
    flow = store.get("flow", flow_id)
    if flow is None:
        raise ValueError(FOREIGN_KEY_VIOLATION)
    known = {t["slug"] for t in store.find("task", flow_id=flow_id)}
    rows = []
    for task in tasks:
        if task["slug"] in known:
            continue  # ON CONFLICT (flow_id, slug) DO NOTHING
        known.add(task["slug"])
        retry_delay = task.get("retry_delay")
        rows.append(
            {
                "id": task.get("id") or str(uuid.uuid4()),
                "flow_id": flow_id,
                "tenant_id": tenant_id,
                "name": task.get("name"),
                "slug": task["slug"],
                "type": task.get("type"),
                "max_retries": task.get("max_retries") or 0,
                "tags": task.get("tags") or [],
                "retry_delay": None
                if retry_delay is None
                else datetime.timedelta(seconds=float(retry_delay)),
                "trigger": _trigger_name(task.get("trigger")),
                "auto_generated": bool(task.get("auto_generated", False)),
                "cache_key": task.get("cache_key"),
            }
        )
    _db(store.insert_many, "task", rows)
    serialized = dict(store.get("flow", flow_id)["serialized_flow"] or {})
    current = list(serialized.get("tasks") or [])
    slugs = {t.get("slug") for t in current}
    for task in tasks:
        if task["slug"] not in slugs:
            current.append(task)
            slugs.add(task["slug"])
    serialized["tasks"] = current
    store.update("flow", flow_id, {"serialized_flow": serialized})


def register_edges(store: Store, flow_id: str, tenant_id: Optional[str], edges: Any) -> None:
    if not isinstance(edges, list):
        raise ValueError("serialized_edges: value is not a valid list")
    lookup = {t["slug"]: t["id"] for t in store.find("task", flow_id=flow_id)}
    rows = []
    seen = {
        (e["downstream_task_id"], e["upstream_task_id"])
        for e in store.find("edge", flow_id=flow_id)
    }
    try:
        for edge in edges:
            up = lookup[_slug_of(edge["upstream_task"])]
            down = lookup[_slug_of(edge["downstream_task"])]
            if (down, up) in seen:
                continue  # ON CONFLICT DO NOTHING
            seen.add((down, up))
            rows.append(
                {
                    "tenant_id": tenant_id,
                    "flow_id": flow_id,
                    "upstream_task_id": up,
                    "downstream_task_id": down,
                    "key": edge.get("key"),
                    "mapped": bool(edge.get("mapped", False)),
                }
            )
    except (KeyError, TypeError):
        raise ValueError(
            "Edges could not be registered - some edges reference tasks that do not exist "
            "within this flow."
        ) from None
    _db(store.insert_many, "edge", rows)


def resolve_register_tasks(obj: Any, info: Any, input: dict) -> dict:
    register_tasks(_ctx(info).store, input["flow_id"], None, input["serialized_tasks"])
    return {"success": True}


def resolve_register_edges(obj: Any, info: Any, input: dict) -> dict:
    register_edges(_ctx(info).store, input["flow_id"], None, input["serialized_edges"])
    return {"success": True}


def resolve_delete_flow(obj: Any, info: Any, input: dict) -> dict:
    return {"success": _ctx(info).store.delete("flow", input["flow_id"])}


def archive_flow(store: Store, flow_id: str) -> bool:
    if not store.update("flow", flow_id, {"archived": True}):
        return False
    for run in store.find("flow_run", flow_id=flow_id, state="Scheduled"):
        if run["auto_scheduled"]:
            store.delete("flow_run", run["id"])
        else:
            cancel_flow_run(store, run["id"], state_message=f"Flow {flow_id} was archived.")
    return True


def resolve_archive_flow(obj: Any, info: Any, input: dict) -> dict:
    return {"success": archive_flow(_ctx(info).store, input["flow_id"])}


def _flow_group_or_fail(store: Store, flow_group_id: str) -> Dict[str, Any]:
    group = store.get("flow_group", flow_group_id)
    if not group:
        raise ValueError("Invalid flow group ID")
    return group


def resolve_set_flow_group_labels(obj: Any, info: Any, input: dict) -> dict:
    """The UI's label editor: these labels replace the flow's for runs created from now on
    (None: back to the flow's own)."""
    store = _ctx(info).store
    group = _flow_group_or_fail(store, input["flow_group_id"])
    labels = input.get("labels")
    store.update("flow_group", group["id"], {"labels": None if labels is None else list(labels)})
    return {"success": True}


def resolve_set_flow_group_run_config(obj: Any, info: Any, input: dict) -> dict:
    store = _ctx(info).store
    group = _flow_group_or_fail(store, input["flow_group_id"])
    run_config = input.get("run_config")
    if run_config is not None and not isinstance(run_config, dict):
        raise ValueError("Invalid run config")
    store.update("flow_group", group["id"], {"run_config": run_config})
    return {"success": True}


def _set_flow_group_setting(store: Store, flow_id: str, name: str, value: bool) -> dict:
    flow = store.get("flow", flow_id)
    if not flow:
        raise ValueError("Invalid flow ID")
    group = _flow_group_or_fail(store, flow["flow_group_id"])
    store.update(
        "flow_group", group["id"], {"settings": {**(group["settings"] or {}), name: value}}
    )
    return {"success": True}


def resolve_disable_flow_lazarus_process(obj: Any, info: Any, input: dict) -> dict:
    return _set_flow_group_setting(_ctx(info).store, input["flow_id"], "lazarus_enabled", False)


def resolve_enable_flow_lazarus_process(obj: Any, info: Any, input: dict) -> dict:
    return _set_flow_group_setting(_ctx(info).store, input["flow_id"], "lazarus_enabled", True)


def set_schedule_active_(store: Store, flow_id: str) -> bool:
    flow = store.get("flow", flow_id)
    if not flow:
        return False
    group = store.get("flow_group", flow["flow_group_id"]) or {}
    required = {p.get("name") for p in flow["parameters"] or [] if p.get("required")}
    if flow["schedule"] is not None and required:
        missing = required.difference(group.get("default_parameters") or {})
        clock_params = [
            set((c.get("parameter_defaults") or {}).keys())
            for c in flow["schedule"].get("clocks", [])
        ]
        if not all(missing <= c for c in clock_params):
            raise ValueError("Can not schedule a flow that has required parameters.")
    if flow["schedule"] is None and group.get("schedule") is None:
        return False
    store.update("flow", flow_id, {"is_schedule_active": True})
    schedule_flow_runs(store, flow_id)
    return True


def schedule_flow_runs(store: Store, flow_id: str, max_runs: int = 10) -> List[str]:
    """What the server does synchronously when a schedule is turned on (the periodic
    scheduler service itself is not reproduced)."""
    from prefect.serialization.schedule import ScheduleSchema

    flow = store.get("flow", flow_id)
    group = store.get("flow_group", flow["flow_group_id"]) or {}
    raw = group.get("schedule") or flow["schedule"]
    if raw is None or not flow["is_schedule_active"] or flow["archived"]:
        return []
    try:
        schedule = ScheduleSchema().load(raw)
    except Exception:
        return []
    auto = [
        r["scheduled_start_time"]
        for r in store.find("flow_run", flow_id=flow_id)
        if r["auto_scheduled"]
    ]
    last = pendulum.instance(max(auto)) if auto else pendulum.now("UTC")
    run_ids = []
    for event in schedule.next(n=max_runs, return_events=True):
        if event.parameter_defaults or event.labels is not None:
            key = json.dumps([event.parameter_defaults, event.labels], sort_keys=True)
            idempotency_key = f"auto-scheduled:{event.start_time.in_tz('UTC')}:{key}"
        elif event.start_time <= last:
            continue
        else:
            idempotency_key = f"auto-scheduled:{event.start_time.in_tz('UTC')}"
        run_id = create_flow_run(
            store,
            flow_id=flow_id,
            scheduled_start_time=event.start_time,
            parameters=event.parameter_defaults,
            labels=event.labels,
            idempotency_key=idempotency_key,
        )
        store.update("flow_run", run_id, {"auto_scheduled": True})
        run_ids.append(run_id)
    return run_ids


def resolve_set_schedule_active(obj: Any, info: Any, input: dict) -> dict:
    return {"success": set_schedule_active_(_ctx(info).store, input["flow_id"])}


def resolve_set_schedule_inactive(obj: Any, info: Any, input: dict) -> dict:
    store = _ctx(info).store
    if not store.update("flow", input["flow_id"], {"is_schedule_active": False}):
        return {"success": False}
    for run in store.find("flow_run", flow_id=input["flow_id"], state="Scheduled"):
        if run["auto_scheduled"]:
            store.delete("flow_run", run["id"])
    return {"success": True}


# ===================================================================== runs

_ADJECTIVE_WORDS = (
    "amber agile bold brave bright calm clever cosmic crisp daring eager fancy fearless "
    "gentle glossy golden grumpy happy hidden humble icy jolly keen lively lucky mellow "
    "merry mighty nimble noble olive polite proud quick quiet rapid rustic scarlet shiny "
    "silent silver smart snappy spiffy stellar sturdy sunny swift tidy vivid witty zealous"
)
_ANIMAL_WORDS = (
    "albatross alpaca ant badger bat bear beaver bison bobcat camel cat cheetah cobra "
    "condor coyote crab crane crow deer dingo dolphin donkey eagle eel elk falcon ferret "
    "finch fox frog gecko gibbon goat goose gopher heron hyena ibis jackal jaguar koala "
    "lemur leopard lion llama lynx marmot mink moose newt ocelot orca otter owl panda "
    "parrot pelican penguin puma quail rabbit raccoon raven seal shark sloth snake stork "
    "tapir tiger toad turtle walrus weasel whale wolf wombat yak zebra"
)
_ADJECTIVES = _ADJECTIVE_WORDS.split()
_ANIMALS = _ANIMAL_WORDS.split()


def generate_slug() -> str:
    """A random two-word run name like the server's ``names.generate_slug(2)``."""
    return f"{random.choice(_ADJECTIVES)}-{random.choice(_ANIMALS)}"  # noqa: S311


def create_flow_run(
    store: Store,
    flow_id: Optional[str] = None,
    parameters: Optional[dict] = None,
    context: Optional[dict] = None,
    scheduled_start_time: Any = None,
    flow_run_name: Optional[str] = None,
    version_group_id: Optional[str] = None,
    labels: Optional[List[str]] = None,
    run_config: Optional[dict] = None,
    idempotency_key: Optional[str] = None,
) -> str:
    if flow_id is None and version_group_id is None:
        raise ValueError("One of flow_id or version_group_id must be provided.")
    start = _to_utc(scheduled_start_time) if scheduled_start_time is not None else now()
    if flow_id:
        candidates = [f for f in store.all("flow") if f["id"] == flow_id]
    else:
        candidates = [
            f
            for f in store.all("flow")
            if f["version_group_id"] == version_group_id and not f["archived"]
        ]
    if not candidates:
        raise ValueError(
            f"Flow {flow_id} not found"
            if flow_id
            else f"Version group {version_group_id} has no unarchived flows."
        )
    flow = max(candidates, key=lambda f: f["version"] or 0)
    if flow["archived"]:
        raise ValueError(f"Flow {flow['id']} is archived.")
    group = store.get("flow_group", flow["flow_group_id"]) or {}

    if labels is not None:
        run_labels = list(labels)
    elif run_config is not None:
        run_labels = list(run_config.get("labels") or [])
    elif group.get("labels") is not None:
        run_labels = list(group["labels"])
    elif group.get("run_config") is not None:
        run_labels = list(group["run_config"].get("labels") or [])
    elif flow["run_config"] is not None:
        run_labels = list(flow["run_config"].get("labels") or [])
    elif flow["environment"] is not None:
        run_labels = list(flow["environment"].get("labels") or [])
    else:
        run_labels = []
    run_labels.sort()

    if run_config is None:
        run_config = group.get("run_config") if group.get("run_config") is not None else None
        if run_config is None:
            run_config = flow["run_config"]

    flow_params = flow["parameters"] or []
    run_parameters = {p["name"]: p.get("default") for p in flow_params if p.get("default")}
    run_parameters.update(group.get("default_parameters") or {})
    run_parameters.update(parameters or {})
    required = [p["name"] for p in flow_params if p.get("required")]
    missing = set(required).difference(run_parameters)
    if missing:
        raise ValueError(f"Required parameters were not supplied: {missing}")

    if idempotency_key is not None:
        existing = store.first("flow_run", flow_id=flow["id"], idempotency_key=idempotency_key)
        if existing:
            return existing["id"]

    run = _db(
        store.insert,
        "flow_run",
        {
            "tenant_id": flow["tenant_id"],
            "flow_id": flow_id or flow["id"],
            "labels": run_labels,
            "parameters": run_parameters,
            "run_config": run_config,
            "context": context or {},
            "scheduled_start_time": start,
            "name": flow_run_name or generate_slug(),
            "idempotency_key": idempotency_key,
        },
    )
    set_flow_run_state(
        store,
        run["id"],
        _states().Scheduled(message="Flow run scheduled.", start_time=pendulum.instance(start)),
    )
    return run["id"]


def resolve_create_flow_run(obj: Any, info: Any, input: Optional[dict] = None) -> dict:
    input = input or {}
    if not (input.get("flow_id") or input.get("version_group_id")):
        raise ValueError("A flow id or version group ID must be provided.")
    run_id = create_flow_run(
        _ctx(info).store,
        flow_id=input.get("flow_id"),
        parameters=input.get("parameters"),
        context=input.get("context"),
        scheduled_start_time=input.get("scheduled_start_time"),
        flow_run_name=input.get("flow_run_name"),
        version_group_id=input.get("version_group_id"),
        labels=input.get("labels"),
        run_config=input.get("run_config"),
        idempotency_key=input.get("idempotency_key"),
    )
    return {"id": run_id}


def resolve_set_flow_run_name(obj: Any, info: Any, input: dict) -> dict:
    if not input["name"]:
        raise ValueError("Invalid name")
    row = _ctx(info).store.update("flow_run", input["flow_run_id"], {"name": input["name"]})
    return {"success": row is not None}


def resolve_set_task_run_name(obj: Any, info: Any, input: dict) -> dict:
    if not input["name"]:
        raise ValueError("Invalid name")
    row = _ctx(info).store.update("task_run", input["task_run_id"], {"name": input["name"]})
    return {"success": row is not None}


def resolve_set_flow_run_labels(obj: Any, info: Any, input: dict) -> dict:
    row = _ctx(info).store.update(
        "flow_run", input["flow_run_id"], {"labels": sorted(input["labels"])}
    )
    return {"success": row is not None}


def _find_task_run(store: Store, flow_run_id: str, task_id: str, map_index: int) -> Optional[dict]:
    for tr in store.all("task_run"):
        if (
            tr["flow_run_id"] == flow_run_id
            and tr["task_id"] == task_id
            and tr["map_index"] == map_index
        ):
            return tr
    return None


def _insert_pending_task_run(
    store: Store, flow_run_id: str, task: dict, map_index: int
) -> Dict[str, Any]:
    serialized = _states().Pending(message="Task run created").serialize()
    with store.lock:
        task_run = _db(
            store.insert,
            "task_run",
            {
                "tenant_id": task["tenant_id"],
                "flow_run_id": flow_run_id,
                "task_id": task["id"],
                "map_index": map_index,
                "cache_key": task["cache_key"],
                "version": 0,
            },
        )
        store.insert(
            "task_run_state",
            {
                "tenant_id": task["tenant_id"],
                "task_run_id": task_run["id"],
                "state": "Pending",
                "message": "Task run created",
                "serialized_state": serialized,
            },
        )
    return {"id": task_run["id"], "serialized_state": serialized}


def resolve_get_or_create_task_run(obj: Any, info: Any, input: dict) -> dict:
    store = _ctx(info).store
    map_index = -1 if input.get("map_index") is None else input["map_index"]
    existing = _find_task_run(store, input["flow_run_id"], input["task_id"], map_index)
    if existing:
        return {"id": existing["id"]}
    task = store.get("task", input["task_id"])
    try:
        if task is None:
            raise KeyError(input["task_id"])
        created = _insert_pending_task_run(store, input["flow_run_id"], task, map_index)
    except Exception:
        raise ValueError("Invalid ID") from None
    return {"id": created["id"]}


def resolve_get_or_create_task_run_info(obj: Any, info: Any, input: dict) -> dict:
    store = _ctx(info).store
    map_index = -1 if input.get("map_index") is None else input["map_index"]
    existing = _find_task_run(store, input["flow_run_id"], input["task_id"], map_index)
    if existing:
        return {
            "id": existing["id"],
            "version": existing["version"],
            "state": existing["state"],
            "serialized_state": existing["serialized_state"],
        }
    task = store.get("task", input["task_id"])
    if not task:
        raise ValueError("Invalid task ID")
    created = _insert_pending_task_run(store, input["flow_run_id"], task, map_index)
    return {
        "id": created["id"],
        "version": 0,
        "state": "Pending",
        "serialized_state": created["serialized_state"],
    }


def resolve_update_flow_run_heartbeat(obj: Any, info: Any, input: dict) -> dict:
    # the server updates in a background task and always reports success
    _ctx(info).store.update("flow_run", input["flow_run_id"], {"heartbeat": now()})
    return {"success": True}


def resolve_update_task_run_heartbeat(obj: Any, info: Any, input: dict) -> dict:
    _ctx(info).store.update("task_run", input["task_run_id"], {"heartbeat": now()})
    return {"success": True}


def resolve_delete_flow_run(obj: Any, info: Any, input: dict) -> dict:
    return {"success": _ctx(info).store.delete("flow_run", input["flow_run_id"])}


def get_runs_in_queue(
    store: Store,
    tenant_id: str,
    before: Optional[datetime.datetime] = None,
    labels: Optional[List[str]] = None,
    agent_id: Optional[str] = None,
    limit: int = QUEUED_RUNS_RETURNED_LIMIT,
) -> List[str]:
    before = _to_utc(before) if before is not None else now()
    labels = labels or []
    where = {
        "tenant_id": {"_eq": tenant_id},
        "_or": [
            {"state": {"_in": scheduled_state_names()}, "state_start_time": {"_lte": before}},
            {
                "state": {"_eq": "Running"},
                "task_runs": {
                    "state": {"_in": scheduled_state_names()},
                    "state_start_time": {"_lte": before},
                },
            },
        ],
    }
    runs = select(
        store,
        "flow_run",
        store.all("flow_run"),
        {"where": where, "order_by": [{"state_start_time": "asc"}], "limit": limit * 3},
    )
    result = []
    for run in runs:
        if len(result) == limit:
            break
        run_labels = run["labels"] or []
        if set(run_labels) - set(labels):
            continue  # the run needs a label the agent does not have
        if not run_labels and labels:
            continue  # unlabeled runs only go to agents without labels
        result.append(run["id"])
    if agent_id:
        agent_uuid = _uuid_or_none(agent_id)
        if agent_uuid and store.get("agent", agent_uuid):
            store.update("agent", agent_uuid, {"last_queried": now()})
    return result


def resolve_get_runs_in_queue(obj: Any, info: Any, input: dict) -> dict:
    labels = input.get("labels", [])
    if labels is None:
        # the server calls labels.sort() on the raw input
        raise AttributeError("'NoneType' object has no attribute 'sort'")
    ctx = _ctx(info)
    ids = get_runs_in_queue(
        ctx.store,
        tenant_id=input["tenant_id"],
        before=input.get("before"),
        labels=sorted(labels),
        agent_id=ctx.header("x-prefect-agent-id"),
    )
    return {"flow_run_ids": ids}


# ===================================================================== states


def set_flow_run_state(
    store: Store,
    flow_run_id: Optional[str],
    state: State,
    agent_id: Optional[str] = None,
    submitted_lock: Optional[ExpiringSet] = None,
) -> Dict[str, Any]:
    if flow_run_id is None:
        raise ValueError("Invalid flow run ID.")
    with store.lock:
        run = store.get("flow_run", flow_run_id)
        if not run:
            raise ValueError(f"State update failed for flow run ID {flow_run_id}")
        lock_name = f"{run['id']}-submitted-lock"
        if state.is_submitted() and submitted_lock and not submitted_lock.add(lock_name):
            raise ValueError("State update failed: this run has already been submitted.")
        if isinstance(state, _states().Cancelled):
            for tr in store.find("task_run", flow_run_id=flow_run_id):
                try:
                    if not _load_state(tr["serialized_state"]).is_finished():
                        set_task_run_state(store, tr["id"], state)
                except Exception:  # noqa: S112 - the server gathers with return_exceptions
                    continue
        row = store.insert(
            "flow_run_state",
            {
                "tenant_id": run["tenant_id"],
                "flow_run_id": flow_run_id,
                "version": (run["version"] or 0) + 1,
                "state": type(state).__name__,
                "timestamp": now(),
                "message": state.message,
                "result": _json_or_none(state.result),
                "start_time": _to_utc(getattr(state, "start_time", None)),
                "serialized_state": state.serialize(),
            },
        )
        if state.is_running() or state.is_submitted():
            store.update("flow_run", flow_run_id, {"heartbeat": now()})
        if state.is_submitted() and agent_id:
            agent_uuid = _uuid_or_none(agent_id)
            if agent_uuid and store.get("agent", agent_uuid):
                store.update("flow_run", flow_run_id, {"agent_id": agent_uuid})
        return row


def set_task_run_state(store: Store, task_run_id: Optional[str], state: State) -> Dict[str, Any]:
    if task_run_id is None:
        raise ValueError("Invalid task run ID.")
    with store.lock:
        task_run = store.get("task_run", task_run_id)
        if not task_run:
            raise ValueError(f"State update failed for task run ID {task_run_id}")
        flow_run = store.get("flow_run", task_run["flow_run_id"]) or {}
        if state.is_running() and flow_run.get("state") != "Running":
            raise ValueError(
                f"State update failed for task run ID {task_run_id}: provided "
                f"a running state but associated flow run {task_run['flow_run_id']} is not "
                "in a running state."
            )
        old = task_run["serialized_state"] or {}
        if not state.cached_inputs and old.get("cached_inputs"):
            state.cached_inputs = _load_state(old).cached_inputs
        row = store.insert(
            "task_run_state",
            {
                "tenant_id": task_run["tenant_id"],
                "task_run_id": task_run_id,
                "version": (task_run["version"] or 0) + 1,
                "timestamp": now(),
                "message": state.message,
                "result": _json_or_none(state.result),
                "start_time": _to_utc(getattr(state, "start_time", None)),
                "state": type(state).__name__,
                "serialized_state": state.serialize(),
            },
        )
        if state.is_running():
            store.update("task_run", task_run_id, {"heartbeat": now()})
        return row


def _check_state_size(state_input: dict) -> None:
    if sys.getsizeof(json.dumps(state_input["state"])) > STATE_PAYLOAD_LIMIT:
        raise ValueError("State payload is too large.")


def resolve_set_flow_run_states(obj: Any, info: Any, input: dict) -> dict:
    ctx = _ctx(info)
    agent_id = ctx.header("x-prefect-agent-id")
    results = []
    for state_input in input["states"]:
        _check_state_size(state_input)
        state = _load_state(state_input["state"])
        flow_run_id = state_input.get("flow_run_id")
        set_flow_run_state(
            ctx.store, flow_run_id, state, agent_id=agent_id, submitted_lock=ctx.submitted_lock
        )
        results.append({"id": flow_run_id, "status": "SUCCESS", "message": None})
    return {"states": results}


def resolve_set_task_run_states(obj: Any, info: Any, input: dict) -> dict:
    ctx = _ctx(info)
    results = []
    for state_input in input["states"]:
        _check_state_size(state_input)
        state = _load_state(state_input["state"])
        task_run_id = state_input.get("task_run_id")
        set_task_run_state(ctx.store, task_run_id, state)
        results.append({"id": task_run_id, "status": "SUCCESS", "message": None})
    return {"states": results}


def cancel_flow_run(store: Store, flow_run_id: str, state_message: Optional[str] = None) -> str:
    run = store.get("flow_run", flow_run_id)
    if not run:
        raise ValueError(f"Invalid flow run ID: {flow_run_id}.")
    current = _load_state(run["serialized_state"])
    if current.is_finished():
        return run["state"]
    if current.is_running():
        new: State = _states().Cancelling(state_message or "Flow run is cancelling")
    else:
        new = _states().Cancelled(state_message or "Flow run is cancelled")
    return set_flow_run_state(store, flow_run_id, new)["state"]


def resolve_cancel_flow_run(obj: Any, info: Any, input: dict) -> dict:
    return {"state": cancel_flow_run(_ctx(info).store, input["flow_run_id"])}


# ===================================================================== logs


def resolve_write_run_logs(obj: Any, info: Any, input: dict) -> dict:
    store = _ctx(info).store
    rows = []
    for log in input["logs"]:
        timestamp = log.get("timestamp")
        rows.append(
            {
                "tenant_id": None,  # the server does not fill it in from this mutation
                "flow_run_id": log.get("flow_run_id"),
                "task_run_id": log.get("task_run_id"),
                "timestamp": _to_utc(timestamp) if timestamp is not None else now(),
                "message": log.get("message"),
                "name": log.get("name"),
                "level": log.get("level") or "INFO",
                "info": log.get("info"),
                "is_loaded_from_archive": False,
            }
        )
    if rows:
        _db(store.insert_many, "log", rows)
    return {"success": True}


# ===================================================================== artifacts


def resolve_create_task_run_artifact(obj: Any, info: Any, input: dict) -> dict:
    store = _ctx(info).store
    if sys.getsizeof(json.dumps(input.get("data"))) > ARTIFACT_PAYLOAD_LIMIT:
        raise ValueError(f"Artifact data payload exceeds {ARTIFACT_PAYLOAD_LIMIT} bytes limit.")
    task_run_id = input.get("task_run_id")
    task_run = store.get("task_run", task_run_id)
    if not task_run:
        raise ValueError(f"Task run {task_run_id} not found")
    tenant_id = input.get("tenant_id")
    if tenant_id and tenant_id != task_run["tenant_id"]:
        raise ValueError("Invalid tenant ID.")
    row = _db(
        store.insert,
        "task_run_artifact",
        {
            "tenant_id": tenant_id or task_run["tenant_id"],
            "task_run_id": task_run_id,
            "kind": input.get("kind"),
            "data": input.get("data"),
        },
    )
    return {"id": row["id"]}


def resolve_update_task_run_artifact(obj: Any, info: Any, input: dict) -> dict:
    row = _ctx(info).store.update(
        "task_run_artifact", input["task_run_artifact_id"], {"data": input.get("data")}
    )
    return {"success": row is not None}


def resolve_delete_task_run_artifact(obj: Any, info: Any, input: dict) -> dict:
    return {"success": _ctx(info).store.delete("task_run_artifact", input["task_run_artifact_id"])}


QUERY_RESOLVERS: Dict[str, Callable[..., Any]] = {
    "hello": resolve_hello,
    "api": resolve_api,
    "reference_data": resolve_reference_data,
    "get_task_run_info": resolve_get_task_run_info,
    "mapped_children": resolve_mapped_children,
}

MUTATION_RESOLVERS: Dict[str, Callable[..., Any]] = {
    name[len("resolve_") :]: func
    for name, func in dict(globals()).items()
    if name.startswith("resolve_")
    and callable(func)
    and name[len("resolve_") :] not in QUERY_RESOLVERS
}
