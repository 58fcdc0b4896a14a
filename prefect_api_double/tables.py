"""Table metadata of the Prefect Server database, as Hasura exposes it.

This is the single source of truth for the Hasura-generated half of ``schema.graphql``
(see ``sdlgen.py``) and for the in-memory store (``store.py``).

It describes the state of the real server's Postgres schema after all of its Alembic
migrations (columns, NOT NULL, defaults, unique and foreign-key constraints) and the
relationships declared in its Hasura metadata. Only the tables the Prefect 1.x client,
agent and flow runner can touch are listed (no ``cloud_hook``, ``message`` or
``traversal``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

# Hasura scalar names used for Postgres column types.
UUID = "uuid"
TIMESTAMPTZ = "timestamptz"
STRING = "String"  # varchar
INT = "Int"
BOOLEAN = "Boolean"
JSONB = "jsonb"
INTERVAL = "interval"

SCALARS = (BOOLEAN, INT, STRING, INTERVAL, JSONB, TIMESTAMPTZ, UUID)


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool = True
    # name of a default "factory" understood by store.py: "uuid", "now", "{}", "[]",
    # or a literal python value (False, 0, -1, ...) wrapped in a tuple ("value", x).
    default: Optional[object] = None
    max_length: Optional[int] = None  # character varying(n)


@dataclass(frozen=True)
class ObjectRel:
    """Object relationship: ``local_col`` of this table points at ``remote_col`` there."""

    remote_table: str
    local_col: str
    remote_col: str = "id"


@dataclass(frozen=True)
class ArrayRel:
    """Array relationship: rows of ``remote_table`` whose ``remote_col`` equals our ``id``."""

    remote_table: str
    remote_col: str
    local_col: str = "id"


@dataclass
class Table:
    name: str
    columns: List[Column]
    primary_key: Optional[str] = "id"
    object_rels: Dict[str, ObjectRel] = field(default_factory=dict)
    array_rels: Dict[str, ArrayRel] = field(default_factory=dict)
    # unique constraints: (constraint name, columns); NULLs are distinct, like Postgres
    unique: List[Tuple[str, Tuple[str, ...]]] = field(default_factory=list)
    # foreign keys: column -> (remote table, on delete action "CASCADE" | "SET NULL")
    foreign_keys: Dict[str, Tuple[str, str]] = field(default_factory=dict)

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    @property
    def column_names(self) -> List[str]:
        return [c.name for c in self.columns]


def _id() -> Column:
    return Column("id", UUID, False, "uuid")


def _ts(name: str) -> Column:
    return Column(name, TIMESTAMPTZ, False, "now")


TENANT_FK = ("tenant", "CASCADE")

TABLES: Dict[str, Table] = {}


def _add(table: Table) -> None:
    TABLES[table.name] = table


_add(
    Table(
        "tenant",
        [
            _id(),
            _ts("created"),
            Column("name", STRING, False, max_length=255),
            Column("slug", STRING, False, max_length=255),
            Column("info", JSONB),
            Column("settings", JSONB, False, "{}"),
            _ts("updated"),
        ],
        array_rels={
            "flow_groups": ArrayRel("flow_group", "tenant_id"),
            "flows": ArrayRel("flow", "tenant_id"),
            "projects": ArrayRel("project", "tenant_id"),
        },
        unique=[("tenant_slug_key", ("slug",))],
    )
)

_add(
    Table(
        "project",
        [
            _id(),
            Column("tenant_id", UUID),
            _ts("created"),
            Column("name", STRING, False),
            Column("description", STRING),
            _ts("updated"),
        ],
        object_rels={"tenant": ObjectRel("tenant", "tenant_id")},
        array_rels={"flows": ArrayRel("flow", "project_id")},
        unique=[("project_tenant_id_name_key", ("tenant_id", "name"))],
        foreign_keys={"tenant_id": TENANT_FK},
    )
)

_add(
    Table(
        "flow_group",
        [
            _id(),
            Column("tenant_id", UUID),
            _ts("created"),
            _ts("updated"),
            Column("name", STRING),
            Column("labels", JSONB),
            Column("schedule", JSONB),
            Column("settings", JSONB, False, "{}"),
            Column("default_parameters", JSONB, False, "{}"),
            Column("run_config", JSONB),
            Column("description", STRING),
        ],
        object_rels={"tenant": ObjectRel("tenant", "tenant_id")},
        array_rels={"flows": ArrayRel("flow", "flow_group_id")},
        foreign_keys={"tenant_id": TENANT_FK},
    )
)

_add(
    Table(
        "flow",
        [
            _id(),
            Column("tenant_id", UUID),
            _ts("created"),
            Column("version", INT),
            Column("name", STRING, False),
            Column("description", STRING),
            Column("environment", JSONB),
            Column("parameters", JSONB, True, "{}"),
            Column("project_id", UUID, False),
            Column("archived", BOOLEAN, False, ("value", False)),
            Column("version_group_id", STRING),
            Column("storage", JSONB),
            Column("core_version", STRING),
            _ts("updated"),
            Column("settings", JSONB, False, "{}"),
            Column("serialized_flow", JSONB),
            Column("schedule", JSONB),
            Column("is_schedule_active", BOOLEAN, False, ("value", False)),
            Column("flow_group_id", UUID, False),
            Column("run_config", JSONB),
        ],
        object_rels={
            "flow_group": ObjectRel("flow_group", "flow_group_id"),
            "project": ObjectRel("project", "project_id"),
            "tenant": ObjectRel("tenant", "tenant_id"),
        },
        array_rels={
            "edges": ArrayRel("edge", "flow_id"),
            "flow_runs": ArrayRel("flow_run", "flow_id"),
            "tasks": ArrayRel("task", "flow_id"),
        },
        foreign_keys={
            "tenant_id": TENANT_FK,
            "flow_group_id": ("flow_group", "CASCADE"),
            "project_id": ("project", "CASCADE"),
        },
    )
)

_add(
    Table(
        "task",
        [
            _id(),
            Column("tenant_id", UUID),
            _ts("created"),
            Column("flow_id", UUID, False),
            Column("name", STRING),
            Column("slug", STRING),
            Column("description", STRING),
            Column("type", STRING),
            Column("max_retries", INT),
            Column("retry_delay", INTERVAL),
            Column("trigger", STRING),
            Column("mapped", BOOLEAN, False, ("value", False)),
            Column("auto_generated", BOOLEAN, False, ("value", False)),
            Column("cache_key", STRING),
            Column("is_root_task", BOOLEAN, False, ("value", False)),
            Column("is_terminal_task", BOOLEAN, False, ("value", False)),
            Column("is_reference_task", BOOLEAN, False, ("value", False)),
            Column("tags", JSONB, False, "[]"),
            _ts("updated"),
        ],
        object_rels={"flow": ObjectRel("flow", "flow_id")},
        array_rels={
            "downstream_edges": ArrayRel("edge", "upstream_task_id"),
            "task_runs": ArrayRel("task_run", "task_id"),
            "upstream_edges": ArrayRel("edge", "downstream_task_id"),
        },
        unique=[("task_flow_id_slug_key", ("flow_id", "slug"))],
        foreign_keys={"tenant_id": TENANT_FK, "flow_id": ("flow", "CASCADE")},
    )
)

_add(
    Table(
        "edge",
        [
            _id(),
            Column("tenant_id", UUID),
            _ts("created"),
            Column("flow_id", UUID, False),
            Column("upstream_task_id", UUID, False),
            Column("downstream_task_id", UUID, False),
            Column("key", STRING),
            Column("mapped", BOOLEAN, False, ("value", False)),
            _ts("updated"),
        ],
        object_rels={
            "downstream_task": ObjectRel("task", "downstream_task_id"),
            "flow": ObjectRel("flow", "flow_id"),
            "upstream_task": ObjectRel("task", "upstream_task_id"),
        },
        unique=[
            (
                "edge_flow_id_task_ids_key",
                ("flow_id", "downstream_task_id", "upstream_task_id"),
            )
        ],
        foreign_keys={
            "tenant_id": TENANT_FK,
            "flow_id": ("flow", "CASCADE"),
            "upstream_task_id": ("task", "CASCADE"),
            "downstream_task_id": ("task", "CASCADE"),
        },
    )
)

_add(
    Table(
        "agent_config",
        [
            _id(),
            _ts("created"),
            _ts("updated"),
            Column("tenant_id", UUID, False),
            Column("name", STRING),
            Column("settings", JSONB, False, "{}"),
        ],
        array_rels={"agents": ArrayRel("agent", "agent_config_id")},
        foreign_keys={"tenant_id": TENANT_FK},
    )
)

_add(
    Table(
        "agent",
        [
            _id(),
            _ts("created"),
            _ts("updated"),
            Column("tenant_id", UUID, False),
            Column("agent_config_id", UUID),
            Column("name", STRING),
            Column("type", STRING),
            Column("core_version", STRING),
            Column("labels", JSONB, False, "[]"),
            Column("last_queried", TIMESTAMPTZ, True, "now"),
        ],
        object_rels={"agent_config": ObjectRel("agent_config", "agent_config_id")},
        array_rels={"flow_runs": ArrayRel("flow_run", "agent_id")},
        foreign_keys={"tenant_id": TENANT_FK, "agent_config_id": ("agent_config", "SET NULL")},
    )
)

_add(
    Table(
        "flow_run",
        [
            _id(),
            Column("tenant_id", UUID),
            _ts("created"),
            Column("flow_id", UUID, False),
            Column("parameters", JSONB, True, "{}"),
            Column("scheduled_start_time", TIMESTAMPTZ, False, "now"),
            Column("auto_scheduled", BOOLEAN, False, ("value", False)),
            Column("heartbeat", TIMESTAMPTZ),
            Column("start_time", TIMESTAMPTZ),
            Column("end_time", TIMESTAMPTZ),
            Column("version", INT, False, ("value", 0)),
            Column("state", STRING),
            Column("state_timestamp", TIMESTAMPTZ),
            Column("state_message", STRING),
            Column("state_result", JSONB),
            Column("state_start_time", TIMESTAMPTZ),
            Column("serialized_state", JSONB),
            Column("name", STRING),
            Column("context", JSONB),
            Column("times_resurrected", INT, True, ("value", 0)),
            _ts("updated"),
            Column("idempotency_key", STRING),
            Column("agent_id", UUID),
            Column("labels", JSONB, False, "[]"),
            Column("run_config", JSONB),
        ],
        object_rels={
            "agent": ObjectRel("agent", "agent_id"),
            "flow": ObjectRel("flow", "flow_id"),
            "tenant": ObjectRel("tenant", "tenant_id"),
        },
        array_rels={
            "logs": ArrayRel("log", "flow_run_id"),
            "states": ArrayRel("flow_run_state", "flow_run_id"),
            "task_runs": ArrayRel("task_run", "flow_run_id"),
        },
        unique=[("ix_flow_run_idempotency_key_unique", ("idempotency_key", "flow_id"))],
        foreign_keys={
            "tenant_id": TENANT_FK,
            "flow_id": ("flow", "CASCADE"),
            "agent_id": ("agent", "SET NULL"),
        },
    )
)

_add(
    Table(
        "flow_run_state",
        [
            _id(),
            Column("tenant_id", UUID),
            Column("flow_run_id", UUID, False),
            Column("timestamp", TIMESTAMPTZ, False, "now"),
            Column("state", STRING, False),
            Column("message", STRING),
            Column("result", JSONB),
            Column("start_time", TIMESTAMPTZ),
            Column("serialized_state", JSONB, False),
            _ts("created"),
            _ts("updated"),
            Column("version", INT, True, ("value", 0)),
        ],
        object_rels={"flow_run": ObjectRel("flow_run", "flow_run_id")},
        foreign_keys={"tenant_id": TENANT_FK, "flow_run_id": ("flow_run", "CASCADE")},
    )
)

_add(
    Table(
        "task_run",
        [
            _id(),
            Column("tenant_id", UUID),
            _ts("created"),
            Column("flow_run_id", UUID, False),
            Column("task_id", UUID, False),
            Column("map_index", INT, False, ("value", -1)),
            Column("version", INT, False, ("value", 0)),
            Column("heartbeat", TIMESTAMPTZ),
            Column("start_time", TIMESTAMPTZ),
            Column("end_time", TIMESTAMPTZ),
            Column("state", STRING),
            Column("state_timestamp", TIMESTAMPTZ),
            Column("state_message", STRING),
            Column("state_result", JSONB),
            Column("state_start_time", TIMESTAMPTZ),
            Column("serialized_state", JSONB),
            Column("cache_key", STRING),
            _ts("updated"),
            Column("name", STRING),
        ],
        object_rels={
            "flow_run": ObjectRel("flow_run", "flow_run_id"),
            "task": ObjectRel("task", "task_id"),
            "tenant": ObjectRel("tenant", "tenant_id"),
        },
        array_rels={
            "logs": ArrayRel("log", "task_run_id"),
            "states": ArrayRel("task_run_state", "task_run_id"),
        },
        unique=[("task_run_unique_identifier_key", ("flow_run_id", "task_id", "map_index"))],
        foreign_keys={
            "tenant_id": TENANT_FK,
            "flow_run_id": ("flow_run", "CASCADE"),
            "task_id": ("task", "CASCADE"),
        },
    )
)

_add(
    Table(
        "task_run_state",
        [
            _id(),
            Column("tenant_id", UUID),
            Column("task_run_id", UUID, False),
            Column("timestamp", TIMESTAMPTZ, False, "now"),
            Column("state", STRING, False),
            Column("message", STRING),
            Column("result", JSONB),
            Column("start_time", TIMESTAMPTZ),
            Column("serialized_state", JSONB, False),
            _ts("created"),
            _ts("updated"),
            Column("version", INT, True, ("value", 0)),
        ],
        object_rels={"task_run": ObjectRel("task_run", "task_run_id")},
        foreign_keys={"tenant_id": TENANT_FK, "task_run_id": ("task_run", "CASCADE")},
    )
)

_add(
    Table(
        "task_run_artifact",
        [
            _id(),
            _ts("created"),
            _ts("updated"),
            Column("tenant_id", UUID, False),
            Column("task_run_id", UUID, False),
            Column("kind", STRING, False),
            Column("data", JSONB, False, "{}"),
        ],
        object_rels={"task_run": ObjectRel("task_run", "task_run_id")},
        foreign_keys={"tenant_id": TENANT_FK, "task_run_id": ("task_run", "CASCADE")},
    )
)

# The log table has no primary key (so Hasura generates no ``log_by_pk``) and no
# relationships of its own.
_add(
    Table(
        "log",
        [
            Column("flow_run_id", UUID),
            Column("tenant_id", UUID),
            Column("task_run_id", UUID),
            Column("timestamp", TIMESTAMPTZ, False, "now"),
            Column("name", STRING),
            Column("level", STRING),
            Column("message", STRING),
            Column("info", JSONB),
            _id(),
            _ts("created"),
            _ts("updated"),
            Column("is_loaded_from_archive", BOOLEAN),
        ],
        primary_key=None,
        foreign_keys={
            "tenant_id": TENANT_FK,
            "flow_run_id": ("flow_run", "CASCADE"),
            "task_run_id": ("task_run", "CASCADE"),
        },
    )
)
