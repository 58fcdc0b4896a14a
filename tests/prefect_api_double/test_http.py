"""HTTP behaviour: recording, fault hooks, stop/start on the same port, odd requests."""

from __future__ import annotations

import json
import socket
import threading

import pytest
import requests
from prefect.exceptions import ClientError

from prefect_api_double import PrefectApiDouble, registration

from .helpers import post


def test_binds_loopback_on_an_ephemeral_port(prefect_api):
    assert prefect_api.host == "127.0.0.1"
    assert prefect_api.port > 0
    assert prefect_api.url == f"http://127.0.0.1:{prefect_api.port}"
    assert prefect_api.running


def test_requests_are_recorded(prefect_api):
    tenant = prefect_api.create_tenant("t")  # in-process: not recorded
    assert prefect_api.requests == []
    headers = {"X-PREFECT-AGENT-ID": "agent-1", "X-Custom": "c"}
    post(prefect_api.url + "/graphql", "query q { hello tenant { id } }", headers=headers)
    post(
        prefect_api.url,
        "mutation($input: create_project_input!) { p: create_project(input: $input) { id } }",
        {"input": {"tenant_id": tenant, "name": "x"}},
        variables_as_string=False,
    )
    first, second = prefect_api.requests
    assert first.method == "POST"
    assert first.path == "/graphql"
    assert first.header("x-prefect-agent-id") == "agent-1"
    assert first.operation_type == "query"
    assert first.operation_name == "q"
    assert first.fields == ["hello", "tenant"]  # top-level fields, in order
    assert first.status == 200
    assert first.response["data"]["tenant"] == [{"id": tenant}]
    assert second.fields == ["create_project"]  # the field, not its alias
    assert second.input == {"tenant_id": tenant, "name": "x"}
    assert prefect_api.fields_called() == ["hello", "tenant", "create_project"]
    assert prefect_api.fields_called("mutation") == ["create_project"]
    assert [r.status for r in prefect_api.requests_for("create_project")] == [200]
    assert first.time <= second.time
    prefect_api.clear_requests()
    assert prefect_api.requests == []


def test_concurrent_requests(prefect_api):
    tenant = prefect_api.create_tenant("t")
    query = "mutation($input: create_project_input!) { create_project(input: $input) { id } }"
    results = []

    def create(i):
        results.append(
            post(prefect_api.url, query, {"input": {"tenant_id": tenant, "name": f"p{i % 5}"}})
        )

    threads = [threading.Thread(target=create, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ok = [p for s, p in results if not p.get("errors")]
    duplicates = [p for s, p in results if p.get("errors")]
    assert len(ok) == 5  # exactly one winner per name: creation is atomic
    assert len(duplicates) == 15
    assert {p["errors"][0]["message"] for p in duplicates} == {"Uniqueness violation."}
    assert len(prefect_api.requests) == 20


def test_fail_next_answers_http_500(prefect_api):
    prefect_api.fail_next(2)
    assert prefect_api.pending_faults == 2
    assert requests.post(prefect_api.url, json={"query": "{ hello }"}, timeout=5).status_code == 500
    assert requests.post(prefect_api.url, json={"query": "{ hello }"}, timeout=5).status_code == 500
    status, payload = post(prefect_api.url, "{ hello }")
    assert (status, payload["data"]["hello"]) == (200, "\N{WAVING HAND SIGN}")
    assert [r.fault for r in prefect_api.requests] == ["status", "status", None]
    assert [r.status for r in prefect_api.requests] == [500, 500, 200]


def test_prefect_client_retries_through_a_500(prefect_api):
    prefect_api.create_tenant("t")
    prefect_api.fail_next(1)
    with registration.server_backend(prefect_api.url):
        assert registration.client(prefect_api.url).graphql("{ hello }").data.hello
    assert [r.status for r in prefect_api.requests] == [500, 200]


def test_garbage_next_breaks_the_clients_json_parsing(prefect_api):
    prefect_api.garbage_next()
    with (
        registration.server_backend(prefect_api.url),
        pytest.raises(ClientError, match=r"Malformed response received from API\."),
    ):
        registration.client(prefect_api.url).graphql("{ hello }")
    assert prefect_api.requests[0].fault == "garbage"
    assert registration.client(prefect_api.url).graphql("{ hello }")  # served again


def test_dropped_connection(prefect_api):
    prefect_api.inject_faults(1, kind="drop")
    with pytest.raises(requests.ConnectionError):
        requests.post(prefect_api.url, json={"query": "{ hello }"}, timeout=5)
    assert prefect_api.requests[0].fault == "drop"
    with pytest.raises(ValueError, match="kind must be one of"):
        prefect_api.inject_faults(1, kind="explode")
    prefect_api.fail_next(3)
    prefect_api.clear_faults()
    assert prefect_api.pending_faults == 0


def test_stop_and_start_on_the_same_port_keeps_the_data(prefect_api):
    tenant = prefect_api.create_tenant("t")
    port = prefect_api.port
    prefect_api.stop()
    assert not prefect_api.running
    with pytest.raises(requests.ConnectionError):
        requests.post(f"http://127.0.0.1:{port}", json={"query": "{ hello }"}, timeout=2)
    prefect_api.stop()  # idempotent
    prefect_api.start()
    assert prefect_api.port == port
    _, payload = post(prefect_api.url, "{ tenant { id } }")
    assert payload["data"]["tenant"] == [{"id": tenant}]
    prefect_api.restart(down_for=0.1)
    assert post(prefect_api.url, "{ hello }")[0] == 200


def test_fixed_port_and_context_manager():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with PrefectApiDouble(port=port) as double:
        assert double.url == f"http://127.0.0.1:{port}"
        assert post(double.url, "{ hello }")[0] == 200
    assert not double.running


def test_odd_requests_get_apollo_like_answers(prefect_api):
    url = prefect_api.url
    response = requests.post(url, data=b"", timeout=5)
    assert response.status_code == 400
    response = requests.post(url, data=b"{not json", timeout=5)
    assert response.status_code == 400
    response = requests.post(url, json={"variables": {}}, timeout=5)
    assert (response.status_code, response.text) == (400, "Must provide query string.")
    response = requests.post(url, json={"query": "{ hello }", "variables": "{bad"}, timeout=5)
    assert (response.status_code, response.text) == (400, "Variables are invalid JSON.")
    # a batch is a list of requests and gets a list of answers
    response = requests.post(
        url, json=[{"query": "{ hello }"}, {"query": "{ api { mode } }"}], timeout=5
    )
    assert response.status_code == 200
    assert [list(r["data"]) for r in response.json()] == [["hello"], ["api"]]
    assert prefect_api.requests[-1].fields == ["hello", "api"]
    # GET: health check and queries (not mutations)
    response = requests.get(url + "/.well-known/apollo/server-health", timeout=5)
    assert (response.status_code, response.json()) == (200, {"status": "pass"})
    response = requests.get(url, params={"query": "{ hello }"}, timeout=5)
    assert response.json() == {"data": {"hello": "\N{WAVING HAND SIGN}"}}
    response = requests.get(url, params={"query": "mutation { x }"}, timeout=5)
    assert response.status_code == 405
    assert requests.get(url, timeout=5).status_code == 400
    # the variables of a recorded request are decoded from the JSON string
    post(url, "query($a: Int) { hello }", {"a": 1})
    assert prefect_api.requests[-1].variables == {"a": 1}
    assert json.loads(prefect_api.requests[-1].body)["variables"] == '{"a": 1}'
