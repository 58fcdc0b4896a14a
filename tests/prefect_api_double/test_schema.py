"""The double's schema and request pipeline: names, validation, Apollo-like answers."""

from __future__ import annotations

from graphql import build_schema

from prefect_api_double import sdlgen
from prefect_api_double.graphql_app import SCHEMA_PATH, build_executable_schema

from .helpers import CREATE_TENANT, messages, post


def test_generated_hasura_part_is_up_to_date():
    text = SCHEMA_PATH.read_text()
    assert sdlgen.render(text) == text, "run: python -m prefect_api_double.sdlgen"


def test_schema_uses_the_real_servers_names_and_types():
    schema = build_schema(SCHEMA_PATH.read_text())

    def fields(type_name):
        return {n: str(f.type) for n, f in schema.type_map[type_name].fields.items()}

    assert fields("create_tenant_input") == {"name": "String!", "slug": "String!"}
    assert fields("create_project_input") == {
        "tenant_id": "UUID!",
        "name": "String!",
        "description": "String",
    }
    assert fields("get_runs_in_queue_input") == {
        "tenant_id": "UUID!",
        "before": "DateTime",
        "labels": "[String!]",
    }
    assert fields("set_flow_run_state_input") == {
        "flow_run_id": "UUID!",
        "version": "Int",
        "state": "JSON!",
    }
    query = schema.query_type.fields
    assert str(query["flow_run"].type) == "[flow_run!]!"
    assert str(query["flow_run_by_pk"].type) == "flow_run"
    assert str(query["flow_run_by_pk"].args["id"].type) == "uuid!"
    assert set(query["flow_run"].args) == {"distinct_on", "limit", "offset", "order_by", "where"}
    assert str(query["tenant"].args["order_by"].type) == "[tenant_order_by!]"
    assert "log_by_pk" not in query  # the log table has no primary key
    flow_run = schema.type_map["flow_run"].fields
    assert str(flow_run["serialized_state"].type) == "jsonb"
    assert set(flow_run["serialized_state"].args) == {"path"}
    assert str(flow_run["task_runs"].type) == "[task_run!]!"
    assert str(flow_run["scheduled_start_time"].type) == "timestamptz!"
    assert "_contains" in schema.type_map["jsonb_comparison_exp"].fields
    assert "_ilike" in schema.type_map["String_comparison_exp"].fields


def test_every_declared_mutation_has_a_resolver():
    schema = build_executable_schema()  # raises if a mutation has no resolver
    assert all(f.resolve for f in schema.mutation_type.fields.values())


def test_unknown_field_is_rejected_with_graphql_cores_message(prefect_api):
    status, payload = post(prefect_api.url, "query { tenant { id nope } }")
    assert status == 400  # Apollo answers validation failures with HTTP 400
    assert payload["errors"][0]["message"].startswith("Cannot query field 'nope' on type 'tenant'.")
    assert payload["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "data" not in payload


def test_unknown_mutation_is_rejected(prefect_api):
    status, payload = post(
        prefect_api.url, 'mutation { create_tenants(input: {name: "a"}) { id } }'
    )
    assert status == 400
    assert messages(payload)[0].startswith(
        "Cannot query field 'create_tenants' on type 'Mutation'."
    )


def test_missing_required_argument_and_field(prefect_api):
    status, payload = post(prefect_api.url, "mutation { create_tenant { id } }")
    assert status == 400
    assert "is required, but it was not provided" in messages(payload)[0]

    status, payload = post(prefect_api.url, 'mutation { create_tenant(input: {name: "a"}) { id } }')
    assert status == 400
    assert "slug" in messages(payload)[0]
    assert "required" in messages(payload)[0]


def test_wrongly_typed_literal_and_variable(prefect_api):
    status, payload = post(
        prefect_api.url, 'mutation { create_tenant(input: {name: 1, slug: "a"}) { id } }'
    )
    assert status == 400
    assert "String" in messages(payload)[0]

    # a bad variable is a request error too: errors and no data, hence 400
    status, payload = post(prefect_api.url, CREATE_TENANT, {"input": {"name": "a"}})
    assert status == 400
    assert "data" not in payload
    assert "slug" in messages(payload)[0]


def test_service_uuid_scalar_rejects_bad_uuids(prefect_api):
    query = "mutation($input: create_project_input!) { create_project(input: $input) { id } }"
    status, payload = post(prefect_api.url, query, {"input": {"name": "p", "tenant_id": "nope"}})
    assert status == 400
    assert "Could not parse UUID: nope" in messages(payload)[0]


def test_hasura_uuid_errors_like_postgres(prefect_api):
    status, payload = post(prefect_api.url, 'query { flow_run_by_pk(id: "nope") { id } }')
    assert status == 200
    assert messages(payload) == ['invalid input syntax for type uuid: "nope"']
    assert payload["data"] == {"flow_run_by_pk": None}
    assert payload["errors"][0]["path"] == ["flow_run_by_pk"]


def test_syntax_error(prefect_api):
    status, payload = post(prefect_api.url, "query { tenant { id }")
    assert status == 400
    assert payload["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    assert messages(payload)[0].startswith("Syntax Error:")


def test_depth_limit_of_the_apollo_gateway(prefect_api):
    deep = (
        "query { flow_run { flow { project { tenant { flows { flow_runs { task_runs "
        "{ task { id } } } } } } } } }"
    )
    status, payload = post(prefect_api.url, deep)
    assert status == 400
    assert messages(payload) == ["'' exceeds maximum operation depth of 7"]

    ok = "query q { flow_run { flow { project { tenant { flows { flow_runs { id } } } } } } }"
    status, payload = post(prefect_api.url, ok)
    assert status == 200, payload
    named = deep.replace("query {", "query Named {")
    assert messages(post(prefect_api.url, named)[1]) == [
        "'Named' exceeds maximum operation depth of 7"
    ]


def test_hello_and_variables_in_every_form(prefect_api):
    for variables, as_string in ((None, True), (None, False), ({}, False), ({}, True)):
        status, payload = post(
            prefect_api.url, "query { hello }", variables, variables_as_string=as_string
        )
        assert status == 200
        assert payload == {"data": {"hello": "\N{WAVING HAND SIGN}"}}


def test_any_path_is_served(prefect_api):
    for path in ("", "/", "/graphql", "/graphql/", "/some/where"):
        status, _payload = post(prefect_api.url + path, "{ hello }")
        assert status == 200, path


def test_api_info_and_reference_data(prefect_api):
    status, payload = post(
        prefect_api.url,
        "{ api { backend mode core_version } reference_data { state_hierarchy } }",
    )
    assert status == 200
    assert payload["data"]["api"]["backend"] == "SERVER"
    hierarchy = payload["data"]["reference_data"]["state_hierarchy"]
    assert "Retrying" in hierarchy["Scheduled"]
