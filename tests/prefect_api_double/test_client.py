"""The real ``prefect.Client`` (1.2.4) against the double over HTTP on 127.0.0.1."""

from __future__ import annotations

import pytest
from prefect.exceptions import ClientError

from prefect_api_double import registration

from .helpers import CREATE_PROJECT, CREATE_TENANT, messages, post


def _client(prefect_api, tenant_id=None):
    return registration.client(prefect_api.url, tenant_id)


def test_create_tenant_twice_fails_with_uniqueness_violation(prefect_api):
    with registration.server_backend(prefect_api.url):
        client = _client(prefect_api)
        tenant_id = client.create_tenant("Test Tenant")
        with pytest.raises(ClientError, match=r"Uniqueness violation\."):
            client.create_tenant("Test Tenant")
        # a different name with the same slug collides as well
        with pytest.raises(ClientError, match=r"Uniqueness violation\."):
            client.create_tenant("Another name", slug="test-tenant")
    assert [(t["id"], t["name"], t["slug"]) for t in prefect_api.tenants()] == [
        (tenant_id, "Test Tenant", "test-tenant")
    ]
    create = prefect_api.requests_for("create_tenant")
    assert len(create) == 3
    assert create[0].input == {"name": "Test Tenant", "slug": "test-tenant"}
    assert create[0].operation_type == "mutation"
    assert create[1].errors[0]["path"] == ["create_tenant"]


def test_tenant_slug_must_be_slugified(prefect_api):
    slug_error = r"Slug must be \\?\"slugified\\?\""
    with registration.server_backend(prefect_api.url), pytest.raises(ClientError, match=slug_error):
        _client(prefect_api).create_tenant("Test", slug="Not A Slug")
    assert prefect_api.tenants() == []


def test_tenant_name_and_slug_are_varchar_255(prefect_api):
    status, payload = post(
        prefect_api.url, CREATE_TENANT, {"input": {"name": "n" * 256, "slug": "ok"}}
    )
    assert status == 200
    assert "value too long for type character varying(255)" in messages(payload)[0]
    assert prefect_api.tenants() == []


def test_create_project_within_a_tenant(prefect_api):
    tenant_a = registration.create_tenant(prefect_api.url, "A")
    tenant_b = registration.create_tenant(prefect_api.url, "B")
    project = registration.create_project(prefect_api.url, "proj", tenant_id=tenant_a)
    # Client.create_project swallows the duplicate and looks the project up by name
    assert registration.create_project(prefect_api.url, "proj", tenant_id=tenant_a) == project
    # the same name in another tenant is a different project
    other = registration.create_project(prefect_api.url, "proj", tenant_id=tenant_b)
    assert other != project
    assert {(p["tenant_id"], p["name"]) for p in prefect_api.projects()} == {
        (tenant_a, "proj"),
        (tenant_b, "proj"),
    }
    # the mutation itself refuses a duplicate (tenant_id, name)
    status, payload = post(
        prefect_api.url, CREATE_PROJECT, {"input": {"name": "proj", "tenant_id": tenant_a}}
    )
    assert status == 200
    assert messages(payload) == ["Uniqueness violation."]
    assert payload["data"] == {"create_project": None}


def test_create_project_needs_an_existing_tenant(prefect_api):
    status, payload = post(
        prefect_api.url,
        CREATE_PROJECT,
        {"input": {"name": "p", "tenant_id": "0c7e6c2e-1111-4222-8333-944455556666"}},
    )
    assert messages(payload) == ["Foreign key violation."]
    # tenant_id is required by the input type
    status, payload = post(prefect_api.url, CREATE_PROJECT, {"input": {"name": "p"}})
    assert status == 400
    assert "tenant_id" in messages(payload)[0]


def test_client_picks_the_first_tenant_without_configuration(prefect_api):
    first = prefect_api.create_tenant("first")
    prefect_api.create_tenant("second")
    with registration.server_backend(prefect_api.url):
        assert _client(prefect_api).tenant_id == first
    assert prefect_api.fields_called() == ["tenant"]


def test_invalid_field_through_the_client(prefect_api):
    with registration.server_backend(prefect_api.url), pytest.raises(ClientError) as excinfo:
        _client(prefect_api).graphql({"query": {"tenant": {"id", "nope"}}})
    text = " ".join(str(excinfo.value).split())  # the client re-wraps long messages
    assert "Cannot query field 'nope' on type 'tenant'." in text
    assert "GRAPHQL_VALIDATION_FAILED" in text


def test_client_sends_its_core_version_header(prefect_api):
    with registration.server_backend(prefect_api.url):
        _client(prefect_api).graphql("query { hello }")
    (request,) = prefect_api.requests
    assert request.header("x-prefect-core-version") == "1.2.4"
    assert request.fields == ["hello"]
    assert request.variables is None  # the client sends the JSON string "null"
