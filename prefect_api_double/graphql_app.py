"""The executable GraphQL schema and the request pipeline of the double.

``build_executable_schema()`` builds a graphql-core schema from ``schema.graphql`` and
wires scalars and resolvers into it. ``GraphQLApp.handle()`` processes one HTTP request
body the way the real server's Apollo gateway (apollo-server-express 2.x) does:

- the body is ``{"query": str, "variables": <object | JSON string | null>,
  "operationName": str}`` (or a JSON list of such objects: a batch);
- syntax errors answer HTTP 400 with code ``GRAPHQL_PARSE_FAILED``; validation errors
  (unknown fields, missing or wrongly typed arguments, and Apollo's
  ``graphql-depth-limit`` of 7) answer HTTP 400 with ``GRAPHQL_VALIDATION_FAILED``;
  other request-level errors (bad variables) answer 400 too, because Apollo answers
  400 whenever a result has errors and no ``data``;
- resolver errors answer HTTP 200 with ``{"errors": [...], "data": {...}}`` where each
  error has ``message``, ``locations``, ``path`` and ``extensions.code``
  ``INTERNAL_SERVER_ERROR``.

Messages are graphql-core's (the real gateway runs graphql-js, whose messages use
double quotes where graphql-core uses single quotes).
"""

from __future__ import annotations

import functools
import itertools
import json
import statistics
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pendulum
from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    StringValueNode,
    ValidationRule,
    build_schema,
    execute_sync,
    parse,
    specified_rules,
    validate,
    value_from_ast_untyped,
)

from . import hasura, service
from .sdlgen import COMPARABLE
from .store import Store
from .tables import INT, JSONB, TABLES

SCHEMA_PATH = Path(__file__).with_name("schema.graphql")
MAX_DEPTH = 7  # graphql-depth-limit in the real server's Apollo gateway


class RequestError(Exception):
    """A request Apollo refuses before GraphQL runs (answered as text with a status)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


# ---------------------------------------------------------------------- scalars


def _install_scalar(schema: GraphQLSchema, name: str, serialize, parse_value, parse_literal):
    """Set a scalar's coercion functions; works with graphql-core 3.2 and 3.3."""
    scalar = schema.type_map[name]
    scalar.serialize = serialize
    scalar.parse_value = parse_value
    scalar.parse_literal = parse_literal
    if hasattr(scalar, "coerce_input_value"):  # graphql-core >= 3.3
        scalar.coerce_output_value = serialize
        scalar.coerce_input_value = parse_value
        scalar.coerce_input_literal = lambda node: parse_literal(node, None)


def _passthrough(value: Any) -> Any:
    return value


def _literal_untyped(node: Any, variables: Optional[dict] = None) -> Any:
    return value_from_ast_untyped(node, variables)


def _json_literal(node: Any, variables: Optional[dict] = None) -> Any:
    # the GraphQL service json.loads() string literals; other literals are taken as is
    if isinstance(node, StringValueNode):
        return json.loads(node.value)
    return value_from_ast_untyped(node, variables)


def _datetime_parse(value: Any) -> Any:
    return pendulum.parse(value)


def _datetime_literal(node: Any, variables: Optional[dict] = None) -> Any:
    if isinstance(node, StringValueNode):
        return pendulum.parse(node.value)
    raise ValueError(f"Could not parse DateTime: {value_from_ast_untyped(node, variables)}")


def _datetime_serialize(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _uuid_parse(value: Any) -> str:
    import uuid

    try:
        return str(uuid.UUID(value))
    except Exception:
        raise ValueError(f"Could not parse UUID: {value}") from None


def _uuid_literal(node: Any, variables: Optional[dict] = None) -> str:
    return _uuid_parse(getattr(node, "value", None))


def _timestamptz_serialize(value: Any) -> Any:
    if hasattr(value, "astimezone"):
        return hasura.format_timestamptz(value)
    return value


def _interval_serialize(value: Any) -> Any:
    if hasattr(value, "total_seconds"):
        return hasura.format_interval(value)
    return value


def _install_scalars(schema: GraphQLSchema) -> None:
    _install_scalar(schema, "JSON", _passthrough, _passthrough, _json_literal)
    _install_scalar(schema, "DateTime", _datetime_serialize, _datetime_parse, _datetime_literal)
    _install_scalar(schema, "UUID", str, _uuid_parse, _uuid_literal)
    # Hasura's scalars: values are checked where Postgres would check them
    _install_scalar(schema, "uuid", str, _passthrough, _literal_untyped)
    _install_scalar(schema, "jsonb", _passthrough, _passthrough, _literal_untyped)
    _install_scalar(schema, "timestamptz", _timestamptz_serialize, _passthrough, _literal_untyped)
    _install_scalar(schema, "interval", _interval_serialize, _passthrough, _literal_untyped)


# ---------------------------------------------------------------------- resolvers


def _store(info: Any) -> Store:
    return info.context.store


def _root_list_resolver(table: str):
    def resolve(obj: Any, info: Any, **args: Any) -> List[dict]:
        store = _store(info)
        return hasura.select(store, table, store.all(table), args)

    return resolve


def _root_by_pk_resolver(table: str, pk: str):
    def resolve(obj: Any, info: Any, **args: Any) -> Optional[dict]:
        return _store(info).get(table, hasura.parse_uuid(args[pk]))

    return resolve


def _jsonb_resolver(column: str):
    def resolve(row: dict, info: Any, path: Optional[str] = None) -> Any:
        return hasura.json_path(row.get(column), path)

    return resolve


def _object_rel_resolver(rel: Any):
    def resolve(row: dict, info: Any) -> Optional[dict]:
        key = row.get(rel.local_col)
        if key is None:
            return None
        store = _store(info)
        if rel.remote_col == "id":
            return store.get(rel.remote_table, key)
        return store.first(rel.remote_table, **{rel.remote_col: key})

    return resolve


def _array_rel_resolver(rel: Any):
    def resolve(row: dict, info: Any, **args: Any) -> List[dict]:
        store = _store(info)
        key = row.get(rel.local_col)
        rows = [r for r in store.all(rel.remote_table) if r.get(rel.remote_col) == key]
        return hasura.select(store, rel.remote_table, rows, args)

    return resolve


@functools.lru_cache(maxsize=1)
def executable_schema() -> GraphQLSchema:
    """The executable schema, built once per process (it holds no state)."""
    return build_executable_schema()


def _root_aggregate_resolver(table: str):
    def resolve(obj: Any, info: Any, **args: Any) -> dict:
        store = _store(info)
        return {"table": table, "rows": hasura.select(store, table, store.all(table), args)}

    return resolve


def _array_rel_aggregate_resolver(rel: Any):
    rows_of = _array_rel_resolver(rel)

    def resolve(row: dict, info: Any, **args: Any) -> dict:
        return {"table": rel.remote_table, "rows": rows_of(row, info, **args)}

    return resolve


def _aggregate_count(src: dict, info: Any, columns=None, distinct=None) -> int:
    rows = src["rows"]
    if not columns:
        return len({r["id"] for r in rows}) if distinct else len(rows)
    values = [tuple(r.get(c) for c in columns) for r in rows]
    values = [v for v in values if any(x is not None for x in v)]
    if distinct:
        return len({json.dumps(v, default=str, sort_keys=True) for v in values})
    return len(values)


def _aggregate_extreme(pick):
    def resolve(src: dict, info: Any) -> dict:
        table = TABLES[src["table"]]
        result = {}
        for column in table.columns:
            if column.type not in COMPARABLE:
                continue
            values = [r[column.name] for r in src["rows"] if r.get(column.name) is not None]
            result[column.name] = pick(values) if values else None
        return result

    return resolve


_NUMERIC = {
    "avg": statistics.fmean,
    "sum": sum,
    "stddev": statistics.stdev,
    "stddev_samp": statistics.stdev,
    "stddev_pop": statistics.pstdev,
    "variance": statistics.variance,
    "var_samp": statistics.variance,
    "var_pop": statistics.pvariance,
}


def _aggregate_numeric(name: str):
    func = _NUMERIC[name]

    def resolve(src: dict, info: Any) -> dict:
        table = TABLES[src["table"]]
        result: Dict[str, Any] = {}
        for column in table.columns:
            if column.type != INT:
                continue
            values = [r[column.name] for r in src["rows"] if r.get(column.name) is not None]
            try:
                result[column.name] = func(values) if values else None
            except statistics.StatisticsError:
                result[column.name] = None  # e.g. a sample deviation of one value
        return result

    return resolve


def _wire_aggregate_types(schema: GraphQLSchema, name: str) -> None:
    wrapper = schema.type_map[f"{name}_aggregate"].fields
    wrapper["aggregate"].resolve = lambda src, info: src
    wrapper["nodes"].resolve = lambda src, info: src["rows"]
    fields = schema.type_map[f"{name}_aggregate_fields"].fields
    fields["count"].resolve = _aggregate_count
    fields["max"].resolve = _aggregate_extreme(max)
    fields["min"].resolve = _aggregate_extreme(min)
    for agg in _NUMERIC:
        if agg in fields:
            fields[agg].resolve = _aggregate_numeric(agg)


def build_executable_schema() -> GraphQLSchema:
    schema = build_schema(SCHEMA_PATH.read_text())
    _install_scalars(schema)
    query_fields = schema.query_type.fields
    mutation_fields = schema.mutation_type.fields
    for name, func in service.QUERY_RESOLVERS.items():
        query_fields[name].resolve = func
    for name, func in service.MUTATION_RESOLVERS.items():
        if name in mutation_fields:
            mutation_fields[name].resolve = func
    missing = [n for n in mutation_fields if mutation_fields[n].resolve is None]
    if missing:
        raise RuntimeError(f"mutations declared without a resolver: {missing}")
    for name, table in TABLES.items():
        query_fields[name].resolve = _root_list_resolver(name)
        query_fields[f"{name}_aggregate"].resolve = _root_aggregate_resolver(name)
        _wire_aggregate_types(schema, name)
        if table.primary_key:
            query_fields[f"{name}_by_pk"].resolve = _root_by_pk_resolver(name, table.primary_key)
        fields = schema.type_map[name].fields
        for column in table.columns:
            if column.type == JSONB:
                fields[column.name].resolve = _jsonb_resolver(column.name)
        for rel_name, rel in table.object_rels.items():
            fields[rel_name].resolve = _object_rel_resolver(rel)
        for rel_name, rel in table.array_rels.items():
            fields[rel_name].resolve = _array_rel_resolver(rel)
            fields[f"{rel_name}_aggregate"].resolve = _array_rel_aggregate_resolver(rel)
    return schema


# ---------------------------------------------------------------------- validation


class DepthLimitRule(ValidationRule):
    """Apollo's ``graphql-depth-limit`` (maximum depth 7) in the real gateway."""

    def enter_operation_definition(self, node: OperationDefinitionNode, *_args: Any) -> None:
        name = node.name.value if node.name else ""
        for selection in node.selection_set.selections:
            if self._depth(selection, 0, name, set()):
                return

    def _depth(self, node: Any, depth: int, op_name: str, seen: set) -> bool:
        if depth > MAX_DEPTH:
            self.report_error(
                GraphQLError(f"'{op_name}' exceeds maximum operation depth of {MAX_DEPTH}", node)
            )
            return True
        if isinstance(node, FieldNode):
            if node.name.value.startswith("__") or not node.selection_set:
                return False
            return any(
                self._depth(s, depth + 1, op_name, seen) for s in node.selection_set.selections
            )
        if isinstance(node, FragmentSpreadNode):
            if node.name.value in seen:
                return False
            fragment = self.context.get_fragment(node.name.value)
            if fragment is None:
                return False
            return any(
                self._depth(s, depth, op_name, seen | {node.name.value})
                for s in fragment.selection_set.selections
            )
        if isinstance(node, InlineFragmentNode):
            return any(self._depth(s, depth, op_name, seen) for s in node.selection_set.selections)
        return False


VALIDATION_RULES = (*specified_rules, DepthLimitRule)


# ---------------------------------------------------------------------- execution


def _format_error(error: GraphQLError, code: str) -> Dict[str, Any]:
    formatted: Dict[str, Any] = {"message": error.message}
    if error.locations:
        formatted["locations"] = [
            {"line": loc.line, "column": loc.column} for loc in error.locations
        ]
    if error.path:
        formatted["path"] = list(error.path)
    extensions = dict(error.extensions or {})
    extensions["code"] = code
    formatted["extensions"] = extensions
    return formatted


def describe_document(query: Any) -> Tuple[Optional[str], List[str], Optional[str]]:
    """(operation kind, top-level field names, operation name) of a query, best effort."""
    if not isinstance(query, str):
        return None, [], None
    try:
        document = parse(query)
    except GraphQLError:
        return None, [], None
    kind = None
    fields: List[str] = []
    name = None
    fragments = {d.name.value: d for d in document.definitions if d.kind == "fragment_definition"}

    def collect(selection_set: Any) -> None:
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode):
                fields.append(sel.name.value)
            elif isinstance(sel, InlineFragmentNode):
                collect(sel.selection_set)
            elif isinstance(sel, FragmentSpreadNode) and sel.name.value in fragments:
                collect(fragments[sel.name.value].selection_set)

    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            kind = kind or definition.operation.value
            name = name or (definition.name.value if definition.name else None)
            collect(definition.selection_set)
    return kind, fields, name


class GraphQLApp:
    """Executes GraphQL request bodies against a :class:`Store`."""

    def __init__(
        self, store: Store, submitted_lock_seconds: float = 30.0, replicas: int = 1
    ) -> None:
        self.store = store
        self.schema = executable_schema()
        self.submitted_lock_seconds = submitted_lock_seconds
        self.replicas = replicas
        self.reset_process_state()

    def reset_process_state(self) -> None:
        """Forget what the real API keeps in process memory (not in the database): each
        GraphQL replica's Submitted-state lock."""
        self.submitted_locks = [
            service.ExpiringSet(self.submitted_lock_seconds) for _ in range(self.replicas)
        ]
        self._next_replica = itertools.cycle(range(self.replicas))

    @property
    def submitted_lock(self) -> service.ExpiringSet:
        return self.submitted_locks[0]

    def handle(self, body: bytes, headers: Dict[str, str]) -> Tuple[int, Any]:
        """Process one POST body. Returns (HTTP status, JSON-able payload or text)."""
        if not body:
            raise RequestError(400, "POST body missing. Did you forget use body-parser middleware?")
        try:
            request = json.loads(body)
        except ValueError:
            raise RequestError(400, "Unexpected token in JSON at position 0") from None
        if isinstance(request, list):
            results = [self.execute_request(r, headers) for r in request]
            return 200, [payload for _, payload in results]
        return self.execute_request(request, headers)

    def execute_request(self, request: Any, headers: Dict[str, str]) -> Tuple[int, Any]:
        if not isinstance(request, dict) or not request.get("query"):
            raise RequestError(
                400,
                "POST body missing, invalid Content-Type, or JSON object has no keys."
                if not request
                else "Must provide query string.",
            )
        query = request["query"]
        variables = request.get("variables")
        if isinstance(variables, str):
            try:
                variables = json.loads(variables)
            except ValueError:
                raise RequestError(400, "Variables are invalid JSON.") from None
        if variables is not None and not isinstance(variables, dict):
            raise RequestError(400, "Variables are invalid JSON.")
        return self.execute(query, variables, headers, request.get("operationName"))

    def execute(
        self,
        query: str,
        variables: Optional[dict] = None,
        headers: Optional[Dict[str, str]] = None,
        operation_name: Optional[str] = None,
    ) -> Tuple[int, Dict[str, Any]]:
        try:
            document = parse(query)
        except GraphQLError as error:
            return 400, {"errors": [_format_error(error, "GRAPHQL_PARSE_FAILED")]}
        errors = validate(self.schema, document, VALIDATION_RULES)
        if errors:
            return 400, {"errors": [_format_error(e, "GRAPHQL_VALIDATION_FAILED") for e in errors]}
        replica = self.submitted_locks[next(self._next_replica)]  # round-robin, as a balancer
        context = service.Context(self.store, headers or {}, replica)
        with self.store.lock:
            result = execute_sync(
                self.schema,
                document,
                variable_values=variables,
                context_value=context,
                operation_name=operation_name,
            )
            # serialize while holding the lock: rows are live objects of the store
            payload: Dict[str, Any] = {}
            if result.errors:
                payload["errors"] = [
                    _format_error(e, "INTERNAL_SERVER_ERROR") for e in result.errors
                ]
            if result.data is not None or any(e.path for e in result.errors or []):
                payload["data"] = result.data
            text = json.dumps(payload)
        payload = json.loads(text)
        status = 200 if "data" in payload else 400
        return status, payload
