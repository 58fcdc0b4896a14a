"""A small Hasura-like query engine over :class:`~.store.Store` rows.

Implements what the Hasura-generated half of the schema promises: ``where`` boolean
expressions (``_and``, ``_or``, ``_not``, column comparisons, object and array
relationship filters), ``order_by`` (``asc``/``desc`` with Postgres' default null
placement, ``*_nulls_first``/``*_nulls_last``, ordering through object relationships),
``distinct_on``, ``limit`` and ``offset``, ``<table>_by_pk`` and the ``path`` argument of
``jsonb`` columns.

Semantics follow Postgres as Hasura compiles to SQL:

- comparisons against a NULL column are unknown, so the row is not returned (this
  includes ``_neq`` and ``_nin``); use ``_is_null``;
- a comparison whose *argument* is ``null`` (``{"_eq": null}``) is dropped, i.e. true
  (Hasura's long-standing null-collapse behaviour, which the real server relies on);
- relationship filters are ``EXISTS`` sub-queries;
- invalid uuids and timestamps fail like Postgres does
  (``invalid input syntax for type uuid: "abc"``).
"""

from __future__ import annotations

import datetime
import functools
import json
import re
import uuid
from typing import Any, Callable, Dict, List, Optional, Sequence

import pendulum

from .store import Store
from .tables import (
    BOOLEAN,
    INT,
    INTERVAL,
    JSONB,
    STRING,
    TABLES,
    TIMESTAMPTZ,
    UUID,
    Table,
)

Predicate = Callable[[Dict[str, Any]], Optional[bool]]


class HasuraError(Exception):
    """An error Hasura (or Postgres behind it) reports while executing a query."""

    def __init__(self, message: str, code: str = "data-exception") -> None:
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------- values


def parse_uuid(value: Any) -> str:
    if not isinstance(value, str):
        raise HasuraError(f'invalid input syntax for type uuid: "{value}"')
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise HasuraError(f'invalid input syntax for type uuid: "{value}"') from None


def parse_timestamptz(value: Any) -> datetime.datetime:
    if isinstance(value, datetime.datetime):
        parsed = value
    else:
        try:
            parsed = pendulum.parse(str(value), tz="UTC", strict=False)
        except Exception:
            raise HasuraError(
                f'invalid input syntax for type timestamp with time zone: "{value}"'
            ) from None
        if not isinstance(parsed, datetime.datetime):
            raise HasuraError(f'invalid input syntax for type timestamp with time zone: "{value}"')
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return datetime.datetime.fromtimestamp(parsed.timestamp(), tz=datetime.timezone.utc)


_INTERVAL_RE = re.compile(r"^(?:(\d+) days? ?)?(?:(\d+):(\d{2}):(\d{2}(?:\.\d+)?))?$")


def parse_interval(value: Any) -> datetime.timedelta:
    if isinstance(value, datetime.timedelta):
        return value
    if isinstance(value, (int, float)):
        return datetime.timedelta(seconds=value)
    match = _INTERVAL_RE.match(str(value).strip())
    if not match or not any(match.groups()):
        raise HasuraError(f'invalid input syntax for type interval: "{value}"')
    days, hours, minutes, seconds = match.groups()
    return datetime.timedelta(
        days=int(days or 0),
        hours=int(hours or 0),
        minutes=int(minutes or 0),
        seconds=float(seconds or 0),
    )


def format_timestamptz(value: datetime.datetime) -> str:
    """Hasura's output format: ISO 8601 with ``+00:00``, fraction without trailing zeros."""
    value = value.astimezone(datetime.timezone.utc)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + "+00:00"


def format_interval(value: datetime.timedelta) -> str:
    """Postgres' interval output style (``1 day 02:03:04.5``)."""
    total = value.total_seconds()
    sign = "-" if total < 0 else ""
    total = abs(total)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    clock = f"{sign}{int(hours):02d}:{int(minutes):02d}:{int(seconds):02d}"
    frac = seconds - int(seconds)
    if frac:
        clock += (f"{frac:.6f}")[1:].rstrip("0")
    if days:
        unit = "day" if days == 1 else "days"
        return f"{sign}{int(days)} {unit} {clock}" if clock.strip("-0:") else f"{int(days)} {unit}"
    return clock


def coerce(column_type: str, value: Any) -> Any:
    """Convert a GraphQL argument into the Python value stored for ``column_type``."""
    if value is None:
        return None
    if column_type == UUID:
        return parse_uuid(value)
    if column_type == TIMESTAMPTZ:
        return parse_timestamptz(value)
    if column_type == INTERVAL:
        return parse_interval(value)
    return value


def _json_rank(value: Any) -> int:
    # Postgres jsonb ordering: Object > Array > Boolean > Number > String > Null
    if value is None:
        return 0
    if isinstance(value, str):
        return 1
    if isinstance(value, bool):
        return 3
    if isinstance(value, (int, float)):
        return 2
    if isinstance(value, list):
        return 4
    return 5


def json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    if _json_rank(a) != _json_rank(b):
        return False
    return a == b


def json_contains(container: Any, contained: Any) -> bool:
    """Postgres ``jsonb @> jsonb``."""
    if isinstance(container, dict) and isinstance(contained, dict):
        return all(k in container and json_contains(container[k], v) for k, v in contained.items())
    if isinstance(container, list):
        if isinstance(contained, list):
            return all(any(json_contains(c, item) for c in container) for item in contained)
        # a top-level array contains a primitive
        return any(json_equal(c, contained) for c in container)
    return json_equal(container, contained)


def _sort_key(column_type: str, value: Any) -> Any:
    if column_type == JSONB:
        rank = _json_rank(value)
        if rank in (1, 2, 3):
            return (rank, value)
        return (rank, json.dumps(value, sort_keys=True))
    return value


def _like_to_regex(pattern: str) -> str:
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return "^" + "".join(out) + "$"


def _similar_to_regex(pattern: str) -> str:
    out = []
    for ch in pattern:
        if ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        elif ch in "|*+?()[]{}":
            out.append(ch)
        else:
            out.append(re.escape(ch))
    return "^(?:" + "".join(out) + ")$"


def _compare(op: str, column_type: str, left: Any, right: Any) -> Optional[bool]:
    """Evaluate one comparison operator; None is SQL's unknown."""
    if op == "_is_null":
        return (left is None) is bool(right)
    if right is None:
        return True  # Hasura drops comparisons with a null argument
    if op in ("_has_key", "_has_keys_all", "_has_keys_any"):
        if left is None:
            return None
        keys = [right] if op == "_has_key" else list(right)
        present = [
            (isinstance(left, dict) and k in left)
            or (isinstance(left, list) and k in left)
            or left == k
            for k in keys
        ]
        return any(present) if op == "_has_keys_any" else all(present)
    if left is None:
        return None
    if op in ("_in", "_nin"):
        values = [coerce(column_type, v) for v in right]
        found = any(json_equal(left, v) for v in values) if column_type == JSONB else left in values
        return found if op == "_in" else not found
    if op == "_contains":
        return json_contains(left, right)
    if op == "_contained_in":
        return json_contains(right, left)
    if op in ("_like", "_nlike", "_ilike", "_nilike"):
        flags = re.IGNORECASE if op in ("_ilike", "_nilike") else 0
        found = re.match(_like_to_regex(right), left, flags | re.DOTALL) is not None
        return found if op in ("_like", "_ilike") else not found
    if op in ("_regex", "_nregex", "_iregex", "_niregex"):
        flags = re.IGNORECASE if op in ("_iregex", "_niregex") else 0
        found = re.search(right, left, flags) is not None
        return found if op in ("_regex", "_iregex") else not found
    if op in ("_similar", "_nsimilar"):
        found = re.match(_similar_to_regex(right), left, re.DOTALL) is not None
        return found if op == "_similar" else not found
    right = coerce(column_type, right)
    if op == "_eq":
        return json_equal(left, right) if column_type == JSONB else left == right
    if op == "_neq":
        return not json_equal(left, right) if column_type == JSONB else left != right
    a, b = _sort_key(column_type, left), _sort_key(column_type, right)
    try:
        if op == "_gt":
            return a > b
        if op == "_gte":
            return a >= b
        if op == "_lt":
            return a < b
        if op == "_lte":
            return a <= b
    except TypeError:
        return None
    raise HasuraError(f"unexpected operator {op}", code="validation-failed")


def _and(values: Sequence[Optional[bool]]) -> Optional[bool]:
    if any(v is False for v in values):
        return False
    if any(v is None for v in values):
        return None
    return True


def _or(values: Sequence[Optional[bool]]) -> Optional[bool]:
    if any(v is True for v in values):
        return True
    if any(v is None for v in values):
        return None
    return False


# ---------------------------------------------------------------------- where


def compile_where(store: Store, table_name: str, where: Optional[dict]) -> Predicate:
    """Turn a coerced ``<table>_bool_exp`` value into a predicate on rows.

    Arguments are validated (and uuids/timestamps parsed) up front, so a bad value
    fails the query even when the table is empty, as it does in Postgres.
    """
    table = TABLES[table_name]
    if not where:
        return lambda row: True
    parts: List[Predicate] = []
    for key, value in where.items():
        if key == "_and":
            if value is None:
                continue
            subs = [compile_where(store, table_name, w) for w in value]
            parts.append(lambda row, subs=subs: _and([s(row) for s in subs]))
        elif key == "_or":
            if value is None:
                continue
            subs = [compile_where(store, table_name, w) for w in value]
            parts.append(lambda row, subs=subs: _or([s(row) for s in subs]))
        elif key == "_not":
            if value is None:
                continue
            sub = compile_where(store, table_name, value)
            parts.append(lambda row, sub=sub: None if sub(row) is None else not sub(row))
        elif key in table.object_rels:
            parts.append(_object_rel_predicate(store, table, key, value))
        elif key in table.array_rels:
            parts.append(_array_rel_predicate(store, table, key, value))
        else:
            parts.append(_column_predicate(table, key, value))
    return lambda row: _and([p(row) for p in parts])


def _column_predicate(table: Table, column: str, ops: Optional[dict]) -> Predicate:
    column_type = table.column(column).type
    checks = []
    for op, arg in (ops or {}).items():
        if arg is not None and op in ("_eq", "_neq", "_gt", "_gte", "_lt", "_lte"):
            arg = coerce(column_type, arg)
        elif arg is not None and op in ("_in", "_nin"):
            arg = [coerce(column_type, v) for v in arg]
        elif op == "_cast":
            checks.append(_cast_predicate(column, arg))
            continue
        checks.append((op, arg))

    def predicate(row: Dict[str, Any]) -> Optional[bool]:
        results = []
        for check in checks:
            if callable(check):
                results.append(check(row))
            else:
                op, arg = check
                results.append(_compare(op, column_type, row.get(column), arg))
        return _and(results)

    return predicate


def _cast_predicate(column: str, cast: Optional[dict]) -> Predicate:
    string_ops = (cast or {}).get("String") or {}

    def predicate(row: Dict[str, Any]) -> Optional[bool]:
        value = row.get(column)
        text = None if value is None else json.dumps(value, separators=(", ", ": "))
        return _and([_compare(op, STRING, text, arg) for op, arg in string_ops.items()])

    return predicate


def _object_rel_predicate(store: Store, table: Table, name: str, where: Any) -> Predicate:
    rel = table.object_rels[name]
    sub = compile_where(store, rel.remote_table, where)

    def predicate(row: Dict[str, Any]) -> bool:
        key = row.get(rel.local_col)
        if key is None:
            return False
        for remote in store.tables[rel.remote_table].values():
            if remote.get(rel.remote_col) == key:
                return sub(remote) is True
        return False

    return predicate


def _array_rel_predicate(store: Store, table: Table, name: str, where: Any) -> Predicate:
    rel = table.array_rels[name]
    sub = compile_where(store, rel.remote_table, where)

    def predicate(row: Dict[str, Any]) -> bool:
        key = row.get(rel.local_col)
        return any(
            sub(remote) is True
            for remote in store.tables[rel.remote_table].values()
            if remote.get(rel.remote_col) == key
        )

    return predicate


# ---------------------------------------------------------------------- order by


def _order_terms(store: Store, table_name: str, spec: dict, terms: list, via=None) -> None:
    table = TABLES[table_name]
    for key, value in spec.items():
        if value is None:
            continue
        if key in table.object_rels:
            rel = table.object_rels[key]

            def hop(row, rel=rel, via=via):
                row = via(row) if via else row
                if row is None or row.get(rel.local_col) is None:
                    return None
                for remote in store.tables[rel.remote_table].values():
                    if remote.get(rel.remote_col) == row.get(rel.local_col):
                        return remote
                return None

            _order_terms(store, rel.remote_table, value, terms, via=hop)
            continue
        column_type = table.column(key).type
        descending = value.startswith("desc")
        if value.endswith("nulls_first"):
            nulls_first = True
        elif value.endswith("nulls_last"):
            nulls_first = False
        else:
            nulls_first = descending  # Postgres: NULLS LAST for ASC, NULLS FIRST for DESC

        def getter(row, key=key, via=via):
            row = via(row) if via else row
            return None if row is None else row.get(key)

        terms.append((getter, column_type, descending, nulls_first))


def sort_rows(store: Store, table_name: str, rows: List[dict], order_by: Any) -> List[dict]:
    if not order_by:
        return rows
    specs = order_by if isinstance(order_by, list) else [order_by]
    terms: list = []
    for spec in specs:
        _order_terms(store, table_name, spec, terms)

    def cmp(a: dict, b: dict) -> int:
        for getter, column_type, descending, nulls_first in terms:
            x, y = getter(a), getter(b)
            if x is None and y is None:
                continue
            if x is None or y is None:
                x_first = (x is None) == nulls_first
                return -1 if x_first else 1
            kx, ky = _sort_key(column_type, x), _sort_key(column_type, y)
            if kx == ky:
                continue
            less = kx < ky
            result = -1 if less else 1
            return -result if descending else result
        return 0

    return sorted(rows, key=functools.cmp_to_key(cmp))


# ---------------------------------------------------------------------- select


def select(store: Store, table_name: str, rows: List[dict], args: Dict[str, Any]) -> List[dict]:
    """Apply ``where``, ``order_by``, ``distinct_on``, ``offset`` and ``limit``."""
    predicate = compile_where(store, table_name, args.get("where"))
    selected = [row for row in rows if predicate(row) is True]
    order_by = args.get("order_by")
    distinct_on = args.get("distinct_on")
    if distinct_on:
        if order_by:
            leading = []
            for spec in order_by:
                leading.extend(spec.keys())
            if leading[: len(distinct_on)] != list(distinct_on)[: len(leading)]:
                raise HasuraError(
                    '"distinct_on" columns must match initial "order_by" columns',
                    code="validation-failed",
                )
        selected = sort_rows(store, table_name, selected, order_by)
        seen = set()
        unique_rows = []
        for row in selected:
            key = json.dumps([row.get(c) for c in distinct_on], default=str, sort_keys=True)
            if key not in seen:
                seen.add(key)
                unique_rows.append(row)
        selected = unique_rows
    else:
        selected = sort_rows(store, table_name, selected, order_by)
    offset = args.get("offset")
    if offset is not None:
        if offset < 0:
            raise HasuraError("unexpected negative value", code="validation-failed")
        selected = selected[offset:]
    limit = args.get("limit")
    if limit is not None:
        if limit < 0:
            raise HasuraError("unexpected negative value", code="validation-failed")
        selected = selected[:limit]
    return selected


# ---------------------------------------------------------------------- jsonb path

_PATH_TOKEN = re.compile(r'\.?([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\["([^"]*)"\]|\[\'([^\']*)\'\]')


def json_path(value: Any, path: Optional[str]) -> Any:
    """Resolve Hasura's ``path`` argument (``$.a.b[0]``, ``a.b``, ``["a"]``)."""
    if path is None:
        return value
    text = path.strip()
    if text.startswith("$"):
        text = text[1:]
    pos = 0
    current = value
    while pos < len(text):
        match = _PATH_TOKEN.match(text, pos)
        if not match:
            raise HasuraError(f"parse json path error: {path}", code="validation-failed")
        pos = match.end()
        name, index, quoted, single = match.groups()
        if index is not None:
            if not isinstance(current, list) or int(index) >= len(current):
                return None
            current = current[int(index)]
        else:
            key = name if name is not None else (quoted if quoted is not None else single)
            if not isinstance(current, dict) or key not in current:
                return None
            current = current[key]
    return current


# ---------------------------------------------------------------------- helpers

SCALAR_OUTPUT = {
    UUID: str,
    TIMESTAMPTZ: format_timestamptz,
    INTERVAL: format_interval,
    STRING: str,
    INT: int,
    BOOLEAN: bool,
}
