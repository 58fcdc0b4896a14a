"""Generate the Hasura half of ``schema.graphql`` from ``tables.py``.

The real Prefect Server's Apollo gateway stitches two schemas: the one Hasura (v2.1)
generates from the Postgres tables, and the GraphQL service's hand-written SDL. This
module writes the first half with Hasura's naming rules (``<table>``, ``<table>_by_pk``,
``<table>_bool_exp``, ``<scalar>_comparison_exp``, ``<table>_order_by``, ``order_by``,
``<table>_select_column``; ``path`` argument on ``jsonb`` columns; ``distinct_on``,
``limit``, ``offset``, ``order_by`` and ``where`` on array relationships).

Also generated: ``<table>_aggregate`` root fields and ``<relationship>_aggregate`` fields
with ``aggregate { count max min avg sum stddev ... }`` and ``nodes``.

Not generated (the double does not implement them, so it does not declare them):
Hasura's insert/update/delete mutations, subscriptions, and ordering by
array-relationship aggregates (``<table>_aggregate_order_by``).

Only signatures are emitted: the generated SDL deliberately has no description strings.

Regenerate after editing ``tables.py``::

    python -m prefect_api_double.sdlgen

The test suite checks that the committed file is up to date.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List

from .tables import (
    INT,
    INTERVAL,
    JSONB,
    SCALARS,
    STRING,
    TABLES,
    TIMESTAMPTZ,
    UUID,
    Table,
)

# column types that get max/min, and the numeric aggregates of Int columns
COMPARABLE = (INT, STRING, TIMESTAMPTZ, UUID)
NUMERIC_AGGREGATES = (
    "avg",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "var_pop",
    "var_samp",
    "variance",
)

SCHEMA_PATH = Path(__file__).with_name("schema.graphql")
BEGIN = "# ---- BEGIN GENERATED HASURA PART (python -m prefect_api_double.sdlgen) ----"
END = "# ---- END GENERATED HASURA PART ----"

_BASIC_OPS = ("_eq", "_gt", "_gte", "_lt", "_lte", "_neq")
_STRING_OPS = (
    "_ilike",
    "_iregex",
    "_like",
    "_nilike",
    "_niregex",
    "_nlike",
    "_nregex",
    "_nsimilar",
    "_regex",
    "_similar",
)


def _comparison_exp(scalar: str) -> str:
    fields = {op: scalar for op in _BASIC_OPS}
    fields["_in"] = f"[{scalar}!]"
    fields["_nin"] = f"[{scalar}!]"
    fields["_is_null"] = "Boolean"
    if scalar == STRING:
        fields.update({op: "String" for op in _STRING_OPS})
    if scalar == JSONB:
        fields.update(
            {
                "_cast": "jsonb_cast_exp",
                "_contained_in": "jsonb",
                "_contains": "jsonb",
                "_has_key": "String",
                "_has_keys_all": "[String!]",
                "_has_keys_any": "[String!]",
            }
        )
    body = "\n".join(f"  {name}: {typ}" for name, typ in sorted(fields.items()))
    return f"input {scalar}_comparison_exp {{\n{body}\n}}\n"


def _list_args(table: str) -> str:
    return (
        f"distinct_on: [{table}_select_column!], limit: Int, offset: Int, "
        f"order_by: [{table}_order_by!], where: {table}_bool_exp"
    )


def _object_type(table: Table) -> str:
    lines = []
    entries = []
    for col in table.columns:
        typ = col.type + ("" if col.nullable else "!")
        if col.type == JSONB:
            entries.append((col.name, f"{col.name}(path: String): {typ}"))
        else:
            entries.append((col.name, f"{col.name}: {typ}"))
    for name, rel in table.object_rels.items():
        local = table.column(rel.local_col)
        typ = rel.remote_table + ("" if local.nullable else "!")
        entries.append((name, f"{name}: {typ}"))
    for name, rel in table.array_rels.items():
        entries.append(
            (
                name,
                f"{name}({_list_args(rel.remote_table)}): [{rel.remote_table}!]!",
            )
        )
        entries.append(
            (
                f"{name}_aggregate",
                f"{name}_aggregate({_list_args(rel.remote_table)}): {rel.remote_table}_aggregate!",
            )
        )
    for _, text in sorted(entries):
        lines.append(f"  {text}")
    return f"type {table.name} {{\n" + "\n".join(lines) + "\n}\n"


def _numeric_columns(table: Table) -> List[str]:
    return [c.name for c in table.columns if c.type == INT]


def _aggregate_types(table: Table) -> str:
    name = table.name
    numeric = _numeric_columns(table)
    fields = {
        "count": f"count(columns: [{name}_select_column!], distinct: Boolean): Int!",
        "max": f"max: {name}_max_fields",
        "min": f"min: {name}_min_fields",
    }
    if numeric:
        for agg in (*NUMERIC_AGGREGATES, "sum"):
            fields[agg] = f"{agg}: {name}_{agg}_fields"
    parts = [
        f"type {name}_aggregate {{\n  aggregate: {name}_aggregate_fields\n"
        f"  nodes: [{name}!]!\n}}\n",
        f"type {name}_aggregate_fields {{\n"
        + "\n".join(f"  {v}" for _, v in sorted(fields.items()))
        + "\n}\n",
    ]
    comparable = [c for c in table.columns if c.type in COMPARABLE]
    for agg in ("max", "min"):
        body = "\n".join(f"  {c.name}: {c.type}" for c in sorted(comparable, key=lambda c: c.name))
        parts.append(f"type {name}_{agg}_fields {{\n{body}\n}}\n")
    if numeric:
        for agg in (*NUMERIC_AGGREGATES, "sum"):
            typ = "Int" if agg == "sum" else "Float"
            body = "\n".join(f"  {c}: {typ}" for c in sorted(numeric))
            parts.append(f"type {name}_{agg}_fields {{\n{body}\n}}\n")
    return "\n".join(parts)


def _bool_exp(table: Table) -> str:
    name = f"{table.name}_bool_exp"
    fields = {
        "_and": f"[{name}!]",
        "_not": name,
        "_or": f"[{name}!]",
    }
    for col in table.columns:
        fields[col.name] = f"{col.type}_comparison_exp"
    for rel_name, rel in table.object_rels.items():
        fields[rel_name] = f"{rel.remote_table}_bool_exp"
    for rel_name, rel in table.array_rels.items():
        fields[rel_name] = f"{rel.remote_table}_bool_exp"
    body = "\n".join(f"  {k}: {v}" for k, v in sorted(fields.items()))
    return f"input {name} {{\n{body}\n}}\n"


def _order_by(table: Table) -> str:
    fields = {col.name: "order_by" for col in table.columns}
    for rel_name, rel in table.object_rels.items():
        fields[rel_name] = f"{rel.remote_table}_order_by"
    body = "\n".join(f"  {k}: {v}" for k, v in sorted(fields.items()))
    return f"input {table.name}_order_by {{\n{body}\n}}\n"


def _select_column(table: Table) -> str:
    body = "\n".join(f"  {c}" for c in sorted(table.column_names))
    return f"enum {table.name}_select_column {{\n{body}\n}}\n"


def _query_fields() -> str:
    lines = []
    for name in sorted(TABLES):
        table = TABLES[name]
        lines.append(f"  {name}({_list_args(name)}): [{name}!]!")
        lines.append(f"  {name}_aggregate({_list_args(name)}): {name}_aggregate!")
        if table.primary_key:
            pk_type = table.column(table.primary_key).type
            lines.append(f"  {name}_by_pk({table.primary_key}: {pk_type}!): {name}")
    return "extend type Query {\n" + "\n".join(lines) + "\n}\n"


def generate_hasura_sdl() -> str:
    parts: List[str] = []
    for scalar in (INTERVAL, JSONB, TIMESTAMPTZ, UUID):
        parts.append(f"scalar {scalar}\n")
    parts.append(
        "enum order_by {\n"
        + "".join(
            f"  {value}\n"
            for value in (
                "asc",
                "asc_nulls_first",
                "asc_nulls_last",
                "desc",
                "desc_nulls_first",
                "desc_nulls_last",
            )
        )
        + "}\n"
    )
    parts.append("input jsonb_cast_exp {\n  String: String_comparison_exp\n}\n")
    for scalar in SCALARS:
        parts.append(_comparison_exp(scalar))
    for name in sorted(TABLES):
        table = TABLES[name]
        parts.append(_object_type(table))
        parts.append(_aggregate_types(table))
        parts.append(_bool_exp(table))
        parts.append(_order_by(table))
        parts.append(_select_column(table))
    parts.append(_query_fields())
    return "\n".join(parts)


def render(current: str) -> str:
    """Return ``current`` (the schema file's text) with its generated part replaced."""
    head, sep, rest = current.partition(BEGIN)
    if not sep:
        raise ValueError(f"{SCHEMA_PATH.name} has no line {BEGIN!r}")
    _, sep, tail = rest.partition(END)
    if not sep:
        raise ValueError(f"{SCHEMA_PATH.name} has no line {END!r}")
    return f"{head}{BEGIN}\n\n{generate_hasura_sdl()}\n{END}{tail}"


def main() -> int:
    text = SCHEMA_PATH.read_text()
    new = render(text)
    if new != text:
        SCHEMA_PATH.write_text(new)
        print(f"rewrote {SCHEMA_PATH}")
    else:
        print(f"{SCHEMA_PATH} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
