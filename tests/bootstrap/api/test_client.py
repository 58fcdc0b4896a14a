"""Where the API is (parity with prefect's own configuration) and how its answers map to errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator, Tuple

import pytest

from bootstrap.api import prefect_config
from bootstrap.api.client import (
    ApiConfig,
    GraphQLErrors,
    PrefectApi,
    find_or_create,
    first_id,
    resolve_api,
)
from bootstrap.util.errors import ApiError, ServerUnavailableError, SettingsError
from testbed.lume_services import LUME_CONFIG_TOML

ENVIRONMENTS = [
    {},
    {"PREFECT__SERVER__HOST": "http://prefect.example", "PREFECT__SERVER__PORT": "4300"},
    {"PREFECT__SERVER__HOST": "http://apollo"},
    {"PREFECT__SERVER__ENDPOINT": "http://endpoint.example:1234/graphql"},
    {"PREFECT__CLOUD__API": "https://api.example/graphql", "PREFECT__SERVER__HOST": "http://x"},
    {"PREFECT__CLOUD__API": "http://${API_HOST}:4200", "API_HOST": "expanded.example"},
]

PREFECT_SIDE = """
import json, os, sys
from prefect import configuration
results = []
for extra in json.loads(sys.argv[1]):
    for name in [n for n in os.environ if n.startswith("PREFECT__")]:
        del os.environ[name]
    os.environ.update(extra)
    os.environ["PREFECT__BACKEND"] = "server"
    config = configuration.load_configuration(
        path=configuration.DEFAULT_CONFIG,
        user_config_path=os.environ.get("PREFECT__USER_CONFIG_PATH", "/nonexistent/config.toml"),
        env_var_prefix=configuration.ENV_VAR_PREFIX,
    )
    results.append(config.cloud.api)
print(json.dumps(results))
"""


def test_api_url_resolution_matches_prefects_own_configuration(tmp_path, monkeypatch) -> None:
    """The bootstrap and the agent it starts must never disagree about the server."""
    # Neither side may find a file of this host's own: prefect's side reads none either.
    monkeypatch.setattr(prefect_config, "ROOT_USER_CONFIG", tmp_path / "no-root-config.toml")
    empty_home = tmp_path / "home"
    empty_home.mkdir()
    config = tmp_path / "config.toml"
    config.write_text(LUME_CONFIG_TOML)
    own_api = tmp_path / "api.toml"
    own_api.write_text('[cloud]\napi = "http://${server.host}.example:4300/graphql"\n')
    host_ip = tmp_path / "host_ip.toml"  # a reference to a key of the file's own
    host_ip.write_text('[server]\nhost_ip = "apollo"\nhost = "http://${server.host_ip}"\n')
    default_ip = tmp_path / "default_ip.toml"  # a key only prefect's own defaults have
    default_ip.write_text('[server]\nhost = "http://${server.host_ip}"\n')
    hyphen = tmp_path / "hyphen.toml"
    hyphen.write_text('[server]\nhost-ip = "apollo"\nhost = "http://${server.host-ip}"\n')
    missing = tmp_path / "missing.toml"  # prefect: a missing key is ""
    missing.write_text('[server]\nhost = "http://apollo${server.nowhere}"\n')
    environments = [
        *ENVIRONMENTS,
        {"PREFECT__USER_CONFIG_PATH": str(config)},
        {"PREFECT__USER_CONFIG_PATH": str(config), "PREFECT__SERVER__PORT": "4400"},
        {"PREFECT__USER_CONFIG_PATH": str(config), "PREFECT__CLOUD__API": "http://a:1/graphql"},
        {"PREFECT__USER_CONFIG_PATH": str(own_api), "PREFECT__SERVER__HOST": "lume"},
        {"PREFECT__USER_CONFIG_PATH": str(host_ip)},
        {"PREFECT__USER_CONFIG_PATH": str(host_ip), "PREFECT__SERVER__HOST_IP": "other"},
        {"PREFECT__USER_CONFIG_PATH": str(default_ip)},
        {"PREFECT__USER_CONFIG_PATH": str(hyphen)},
        {"PREFECT__USER_CONFIG_PATH": str(missing)},
    ]
    completed = subprocess.run(
        [sys.executable, "-c", PREFECT_SIDE, json.dumps(environments)],
        capture_output=True,
        text=True,
        check=True,
    )
    from_prefect = json.loads(completed.stdout)
    from_bootstrap = [
        resolve_api({"HOME": str(empty_home), **environ}).url for environ in environments
    ]
    assert from_bootstrap == from_prefect
    assert from_bootstrap[0] == "http://localhost:4200"
    assert from_bootstrap[len(ENVIRONMENTS)] == "http://apollo:4200"


def test_the_api_key_is_never_in_the_repr() -> None:
    config = resolve_api({"PREFECT__CLOUD__API_KEY": "pk_secret"})
    assert config.api_key == "pk_secret"
    assert "pk_secret" not in repr(config)


class _Canned(BaseHTTPRequestHandler):
    status = 200
    body = b"{}"
    seen: list = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        type(self).seen.append((dict(self.headers), json.loads(self.rfile.read(length))))
        self.send_response(self.status)
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def canned() -> Iterator[Tuple[type, str]]:
    handler = type("Handler", (_Canned,), {"seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield handler, f"http://127.0.0.1:{server.server_address[1]}/graphql"
    server.shutdown()
    server.server_close()


def test_requests_look_like_prefects_client(canned) -> None:
    handler, url = canned
    handler.body = b'{"data": {"hello": "hi"}}'
    api = PrefectApi(ApiConfig(url, api_key="k3y"))
    assert api.hello() == "hi"
    api.execute("query { tenant { id } }", {"a": 1})
    (headers1, body1), (_, body2) = handler.seen
    assert body1 == {"query": "query { hello }", "variables": "null"}
    assert body2["variables"] == '{"a": 1}'  # a JSON string, like prefect's Client
    assert headers1["Authorization"] == "Bearer k3y"


@pytest.mark.parametrize(
    ("status", "body", "error", "text"),
    [
        (503, b"down", ServerUnavailableError, "HTTP 503"),
        (404, b"nope", ApiError, "HTTP 404"),
        (400, b'{"errors": [{"message": "Unknown type \'x\'."}]}', GraphQLErrors, "Unknown type"),
        (200, b"<html>garbage", ApiError, "not JSON"),
        (200, b"[" * 100_000 + b"]" * 100_000, ApiError, "not JSON"),  # too deep to decode
        (200, b"[1, 2]", ApiError, "not a GraphQL response"),
        (200, b'{"data": null}', ApiError, "no data"),
        (200, b'{"errors": [{"message": "Uniqueness violation."}]}', GraphQLErrors, "Uniqueness"),
    ],
)
def test_bad_answers_raise_clear_errors(canned, status, body, error, text) -> None:
    handler, url = canned
    handler.status, handler.body = status, body
    with pytest.raises(error, match=text):
        PrefectApi(ApiConfig(url)).execute("query { hello }")


@pytest.mark.parametrize(
    "rows", [{"id": "x"}, [None], [{"id": 42}], [{"name": "no id"}], [{"id": ""}]]
)
def test_a_list_query_answered_with_the_wrong_shape_is_an_api_error(rows) -> None:
    with pytest.raises(ApiError, match="unexpected answer to the tenant query"):
        first_id({"tenant": rows}, "tenant")


@pytest.mark.parametrize(
    "answer", [{"create_tenant": "an id"}, {"create_tenant": {"id": 7}}, {"create_tenant": None}]
)
def test_a_creation_answered_with_the_wrong_shape_is_an_api_error(answer) -> None:
    with pytest.raises(ApiError, match="unexpected answer to create_tenant"):
        find_or_create("tenant 'x'", lambda: None, lambda: answer, "create_tenant")


def test_unreachable_server_names_the_reason() -> None:
    with pytest.raises(ServerUnavailableError, match="Connection refused"):
        PrefectApi(ApiConfig("http://127.0.0.1:1")).hello()


def test_graphql_errors_from_the_api_double_are_surfaced(prefect_api) -> None:
    api = PrefectApi(ApiConfig(prefect_api.url))
    with pytest.raises(GraphQLErrors) as info:
        api.execute("query { tenant { no_such_field } }")
    assert "Cannot query field 'no_such_field'" in str(info.value)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (
            {"PREFECT__CLOUD__API": "prefect-server:4200/graphql"},
            "PREFECT__CLOUD__API='prefect-server:4200/graphql' has no scheme: "
            "write http://prefect-server:4200/graphql",
        ),
        (
            {"PREFECT__SERVER__HOST": "prefect-server"},
            "PREFECT__SERVER__HOST='prefect-server' has no scheme: write http://prefect-server",
        ),
        (
            {"PREFECT__SERVER__ENDPOINT": "ftp://prefect-server/graphql"},
            "is not an http:// or https:// URL",
        ),
    ],
)
def test_a_server_url_requests_cannot_use_is_a_settings_error(environ, expected) -> None:
    """Not requests' "No connection adapters were found" after the wait timeout."""
    with pytest.raises(SettingsError, match=re.escape(expected)):
        resolve_api(environ)
