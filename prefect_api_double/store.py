"""In-memory stand-in for Prefect Server's Postgres database.

Rows are plain dicts keyed by column name (uuids as canonical lower-case strings,
timestamps as timezone-aware UTC ``datetime`` objects, ``jsonb`` as JSON-like Python
values, intervals as ``timedelta``). The store reproduces the database behaviour the
API relies on:

- column defaults and NOT NULL columns;
- unique constraints (``Uniqueness violation.``) and foreign keys
  (``Foreign key violation.``), ``ON DELETE CASCADE`` / ``SET NULL``;
- the ``updated`` timestamp trigger;
- the trigger that creates a Pending task run (map_index -1, version 0) for each task
  of the flow when a flow run is inserted;
- the triggers that copy a newly inserted ``flow_run_state`` / ``task_run_state`` onto
  its run (version, state, serialized_state, state_* columns, start/end times) when
  ``new.version >= coalesce(run.version, 0)``.

All access goes through :attr:`Store.lock` (a re-entrant lock); the HTTP layer holds it
for the whole execution of one GraphQL request, so each request is atomic.
"""

from __future__ import annotations

import copy
import datetime
import threading
import uuid
from typing import Any, Callable, Dict, Iterable, List, Optional

from .tables import TABLES, Table

FINISHED_STATE_NAMES = ("Success", "Failed", "Cached", "TimedOut", "Looped", "Cancelled")

# The message the real server's Hasura client raises for these database errors.
UNIQUENESS_VIOLATION = "Uniqueness violation."
FOREIGN_KEY_VIOLATION = "Foreign key violation."


class UniquenessViolation(ValueError):
    def __init__(self, constraint: str = "") -> None:
        super().__init__(UNIQUENESS_VIOLATION)
        self.constraint = constraint


class ForeignKeyViolation(ValueError):
    def __init__(self, column: str = "") -> None:
        super().__init__(FOREIGN_KEY_VIOLATION)
        self.column = column


class StringTooLong(ValueError):
    def __init__(self, length: int) -> None:
        super().__init__(f"value too long for type character varying({length})")


class NotNullViolation(ValueError):
    def __init__(self, table: str, column: str) -> None:
        super().__init__(
            f'null value in column "{column}" of relation "{table}" violates not-null constraint'
        )


def _check_length(column: Any, value: Any) -> None:
    too_long = isinstance(value, str) and len(value) > (column.max_length or len(value))
    if too_long:
        raise StringTooLong(column.max_length)


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def new_id() -> str:
    return str(uuid.uuid4())


def _default(spec: Any) -> Any:
    if spec == "uuid":
        return new_id()
    if spec == "now":
        return now()
    if spec == "{}":
        return {}
    if spec == "[]":
        return []
    if isinstance(spec, tuple) and spec and spec[0] == "value":
        return copy.deepcopy(spec[1])
    return None


class Store:
    """Tables of rows, with the constraints and triggers of the real database."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.tables: Dict[str, Dict[str, Dict[str, Any]]] = {name: {} for name in TABLES}

    # ------------------------------------------------------------------ reading

    def table(self, name: str) -> Table:
        return TABLES[name]

    def all(self, table: str) -> List[Dict[str, Any]]:
        """All rows of ``table`` in insertion order (the live dicts: do not mutate)."""
        with self.lock:
            return list(self.tables[table].values())

    def get(self, table: str, row_id: Optional[str]) -> Optional[Dict[str, Any]]:
        if row_id is None:
            return None
        with self.lock:
            return self.tables[table].get(row_id)

    def find(self, table: str, **equal: Any) -> List[Dict[str, Any]]:
        with self.lock:
            return [
                row
                for row in self.tables[table].values()
                if all(row.get(k) == v for k, v in equal.items())
            ]

    def first(self, table: str, **equal: Any) -> Optional[Dict[str, Any]]:
        rows = self.find(table, **equal)
        return rows[0] if rows else None

    def snapshot(self, table: str, where: Optional[Callable[[dict], bool]] = None) -> List[dict]:
        """Deep copies of the rows of ``table`` (optionally filtered), for test accessors."""
        with self.lock:
            return [
                copy.deepcopy(row)
                for row in self.tables[table].values()
                if where is None or where(row)
            ]

    # ------------------------------------------------------------------ writing

    def insert(self, table: str, values: Dict[str, Any]) -> Dict[str, Any]:
        """Insert one row; returns the stored row. Raises the database's errors."""
        meta = TABLES[table]
        with self.lock:
            row = self._build_row(meta, values)
            self._check_foreign_keys(meta, row)
            self._check_unique(meta, row)
            self.tables[table][row["id"]] = row
            self._after_insert(table, row)
            return row

    def insert_many(self, table: str, values: Iterable[Dict[str, Any]]) -> List[Dict[str, Any]]:
        """Insert several rows atomically (all or none), like one INSERT statement."""
        meta = TABLES[table]
        with self.lock:
            rows = [self._build_row(meta, v) for v in values]
            for i, row in enumerate(rows):
                self._check_foreign_keys(meta, row)
                self._check_unique(meta, row, pending=rows[:i])
            for row in rows:
                self.tables[table][row["id"]] = row
            for row in rows:
                self._after_insert(table, row)
            return rows

    def update(self, table: str, row_id: str, changes: Dict[str, Any]) -> Optional[dict]:
        """Update one row by id (copy-on-write); returns the new row or None."""
        meta = TABLES[table]
        with self.lock:
            old = self.tables[table].get(row_id)
            if old is None:
                return None
            row = dict(old)
            row.update(changes)
            if "updated" in meta.column_names and "updated" not in changes:
                row["updated"] = now()
            for col in meta.columns:
                if not col.nullable and row.get(col.name) is None:
                    raise NotNullViolation(table, col.name)
                _check_length(col, row.get(col.name))
            if any(k in meta.foreign_keys for k in changes):
                self._check_foreign_keys(meta, row)
            self._check_unique(meta, row, ignore_id=row_id)
            self.tables[table][row_id] = row
            return row

    def delete(self, table: str, row_id: str) -> bool:
        """Delete one row by id, applying ON DELETE CASCADE / SET NULL."""
        with self.lock:
            if row_id not in self.tables[table]:
                return False
            del self.tables[table][row_id]
            for other_name, other in TABLES.items():
                for column, (target, action) in other.foreign_keys.items():
                    if target != table:
                        continue
                    for other_row in list(self.tables[other_name].values()):
                        if other_row.get(column) != row_id:
                            continue
                        if action == "CASCADE":
                            self.delete(other_name, other_row["id"])
                        else:
                            self.update(other_name, other_row["id"], {column: None})
            return True

    # ------------------------------------------------------------------ internals

    def _build_row(self, meta: Table, values: Dict[str, Any]) -> Dict[str, Any]:
        unknown = set(values) - set(meta.column_names)
        if unknown:
            raise ValueError(f"unknown column(s) for table {meta.name}: {sorted(unknown)}")
        row: Dict[str, Any] = {}
        for col in meta.columns:
            if col.name in values and not (values[col.name] is None and col.default):
                row[col.name] = copy.deepcopy(values[col.name])
            else:
                row[col.name] = _default(col.default)
            if not col.nullable and row[col.name] is None:
                raise NotNullViolation(meta.name, col.name)
            _check_length(col, row[col.name])
        return row

    def _check_foreign_keys(self, meta: Table, row: Dict[str, Any]) -> None:
        for column, (target, _) in meta.foreign_keys.items():
            value = row.get(column)
            if value is not None and value not in self.tables[target]:
                raise ForeignKeyViolation(column)

    def _check_unique(
        self,
        meta: Table,
        row: Dict[str, Any],
        ignore_id: Optional[str] = None,
        pending: Iterable[Dict[str, Any]] = (),
    ) -> None:
        for constraint, columns in meta.unique:
            key = tuple(row.get(c) for c in columns)
            if any(v is None for v in key):
                continue  # NULLs never collide in a Postgres unique constraint
            for other in list(self.tables[meta.name].values()) + list(pending):
                if other["id"] in (row["id"], ignore_id):
                    continue
                if tuple(other.get(c) for c in columns) == key:
                    raise UniquenessViolation(constraint)
            if row["id"] in self.tables[meta.name] and row["id"] != ignore_id:
                raise UniquenessViolation(f"{meta.name}_pkey")

    # ------------------------------------------------------------------ triggers

    def _after_insert(self, table: str, row: Dict[str, Any]) -> None:
        if table == "flow_run":
            self._create_task_runs_for_flow_run(row)
        elif table == "flow_run_state":
            self._apply_state(row, "flow_run", "flow_run_id")
        elif table == "task_run_state":
            self._apply_state(row, "task_run", "task_run_id")

    def _create_task_runs_for_flow_run(self, flow_run: Dict[str, Any]) -> None:
        tasks = [t for t in self.tables["task"].values() if t["flow_id"] == flow_run["flow_id"]]
        for task in tasks:
            task_run = self.insert(
                "task_run",
                {
                    "tenant_id": flow_run["tenant_id"],
                    "flow_run_id": flow_run["id"],
                    "task_id": task["id"],
                    "cache_key": task["cache_key"],
                    "map_index": -1,
                },
            )
            self.insert(
                "task_run_state",
                {
                    "tenant_id": flow_run["tenant_id"],
                    "task_run_id": task_run["id"],
                    "state": "Pending",
                    "message": "Task run created",
                    "serialized_state": {"type": "Pending", "message": "Task run created"},
                },
            )

    def _apply_state(self, state_row: Dict[str, Any], run_table: str, fk: str) -> None:
        run = self.tables[run_table].get(state_row[fk])
        if run is None:
            return
        version = state_row.get("version") or 0
        if version < (run.get("version") or 0):
            return
        ts = state_row["timestamp"]
        changes: Dict[str, Any] = {
            "version": version,
            "state": state_row["state"],
            "serialized_state": copy.deepcopy(state_row["serialized_state"]),
            "state_start_time": state_row.get("start_time"),
            "state_timestamp": ts,
            "state_message": state_row.get("message"),
            "state_result": copy.deepcopy(state_row.get("result")),
        }
        if state_row["state"] == "Running":
            start = run.get("start_time")
            changes["start_time"] = ts if start is None else min(start, ts)
        if state_row["state"] in FINISHED_STATE_NAMES:
            end = run.get("end_time")
            changes["end_time"] = ts if end is None else max(end, ts)
        self.update(run_table, run["id"], changes)
