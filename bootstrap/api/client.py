"""The Prefect Server's API: where it is (from Prefect's configuration) and how to talk to it.

The bootstrap deliberately does not import prefect (0.5-0.8 s); it speaks the same GraphQL
over HTTP that prefect's ``Client`` does, and hands the resolved URL to the agent in its
environment (``PREFECT__CLOUD__API``, never its command line) so both use the same server.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit

import requests

from bootstrap.api.prefect_config import prefect_settings, user_config_path
from bootstrap.util.errors import ApiError, ServerUnavailableError, SettingsError
from bootstrap.util.secrets import read_secret_file, redact_url

REQUEST_TIMEOUT = (5.0, 30.0)  # connect, read: seconds


@dataclass(frozen=True)
class ApiConfig:
    """Where the Prefect API is and how to authenticate (Prefect Server usually needs no key)."""

    url: str
    api_key: Optional[str] = None

    @property
    def display_url(self) -> str:
        """The URL without credentials, for logs and messages."""
        return redact_url(self.url)

    def __repr__(self) -> str:  # never show the key, nor credentials in the URL
        return f"ApiConfig(url={self.display_url!r}, api_key={'***' if self.api_key else None})"


def resolve_api(environ: Mapping[str, str]) -> ApiConfig:
    """Resolve the API URL and key exactly as prefect 1.x does with ``backend = "server"``
    (:mod:`bootstrap.api.prefect_config`): ``PREFECT__CLOUD__API`` wins; otherwise
    ``PREFECT__SERVER__ENDPOINT``; otherwise ``PREFECT__SERVER__HOST`` + ``:`` +
    ``PREFECT__SERVER__PORT``; each from the user configuration file when not set."""
    values = prefect_settings(environ)
    source = _api_source(environ)
    try:
        check_api_url(values["cloud.api"], source)
    except SettingsError:
        if source == "PREFECT__SERVER__HOST":  # name the part that is wrong
            check_api_url(values["server.host"], source)
        raise
    return ApiConfig(url=values["cloud.api"], api_key=api_key(environ, values["cloud.api_key"]))


def _api_source(environ: Mapping[str, str]) -> str:
    """What decided the API URL, for error messages."""
    for name in ("PREFECT__CLOUD__API", "PREFECT__SERVER__ENDPOINT", "PREFECT__SERVER__HOST"):
        if environ.get(name):
            return name
    return "Prefect's configuration file" if user_config_path(environ) else "the default"


def check_api_url(url: str, source: str) -> None:
    """An http(s) URL with a host: what requests can talk to (it says "No connection adapters
    were found" otherwise)."""
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and parts.hostname:
        return
    shown = redact_url(url)
    if "://" not in url:
        raise SettingsError(f"{source}={shown!r} has no scheme: write http://{shown} (or https://)")
    raise SettingsError(f"{source}={shown!r} is not an http:// or https:// URL with a host")


API_KEY_ENV = "PREFECT__CLOUD__API_KEY"


def api_key(environ: Mapping[str, str], configured: str = "") -> Optional[str]:
    """The API key: PREFECT__CLOUD__API_KEY (or ``configured``, from Prefect's configuration
    file), or the file PREFECT__CLOUD__API_KEY_FILE names (a Docker or Kubernetes secret), as
    docker-library images read ``*_FILE`` variables."""
    key = configured or None
    path = environ.get(f"{API_KEY_ENV}_FILE")
    if not path:
        return key
    if environ.get(API_KEY_ENV):
        raise SettingsError(f"set {API_KEY_ENV} or {API_KEY_ENV}_FILE, not both")
    try:
        return read_secret_file(path, f"{API_KEY_ENV}_FILE")
    except ValueError as exc:
        raise SettingsError(str(exc)) from None


class GraphQLErrors(ApiError):
    """The API answered with GraphQL errors (HTTP 200 with an ``errors`` list)."""

    def __init__(self, messages: List[str]):
        self.messages = messages
        super().__init__("; ".join(messages))

    def has(self, message: str) -> bool:
        return any(message in item for item in self.messages)


class PrefectApi:
    """Minimal GraphQL client for a Prefect Server (the subset of prefect's ``Client``)."""

    def __init__(self, config: ApiConfig, session: Optional[requests.Session] = None):
        self.config = config
        self._session = session or requests.Session()
        self._session.headers["Content-Type"] = "application/json"
        if config.api_key:
            self._session.headers["Authorization"] = f"Bearer {config.api_key}"

    @property
    def url(self) -> str:
        return self.config.url

    @property
    def display_url(self) -> str:
        return self.config.display_url

    def execute(self, query: str, variables: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """POST a document; return its ``data`` or raise a BootstrapError subclass."""
        # Like prefect's Client: variables travel as a JSON string ("null" when absent).
        body = {"query": query, "variables": json.dumps(variables)}
        try:
            response = self._session.post(self.url, json=body, timeout=REQUEST_TIMEOUT)
        except requests.RequestException as exc:
            raise ServerUnavailableError(_describe_request_error(exc)) from exc
        if response.status_code >= 500:
            raise ServerUnavailableError(f"HTTP {response.status_code} {response.reason}")
        try:
            payload = response.json()
        except (ValueError, RecursionError):  # RecursionError: JSON nested too deeply
            payload = None
        # Apollo answers documents that fail validation with HTTP 400 and an errors list.
        errors = payload.get("errors") if isinstance(payload, dict) else None
        if isinstance(errors, list) and errors:
            raise GraphQLErrors([_error_message(error) for error in errors])
        if response.status_code != 200:
            raise ApiError(f"HTTP {response.status_code} {response.reason}: {_excerpt(response)}")
        if payload is None:
            raise ApiError(f"the answer is not JSON: {_excerpt(response)}")
        if not isinstance(payload, dict) or not ("data" in payload or "errors" in payload):
            raise ApiError(f"the answer is not a GraphQL response: {_excerpt(response)}")
        data = payload.get("data")
        if not isinstance(data, dict):
            raise ApiError(f"the answer has no data: {_excerpt(response)}")
        return data

    def hello(self) -> str:
        """The cheapest query the server answers (the agent sends it too)."""
        data = self.execute("query { hello }")
        if not isinstance(data.get("hello"), str):
            raise ApiError(f"unexpected answer to 'query {{ hello }}': {data!r}")
        return data["hello"]


def _error_message(error: Any) -> str:
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"]
    return json.dumps(error)[:300]


def _excerpt(response: requests.Response, limit: int = 200) -> str:
    text = response.text.strip().replace("\n", " ")
    return repr(text[:limit] + ("..." if len(text) > limit else ""))


def _describe_request_error(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.ConnectTimeout):
        return "connection timed out"
    if isinstance(exc, requests.ReadTimeout):
        return "no answer within the read timeout"
    text = str(exc)
    # urllib3 buries the reason: "... NewConnectionError(...: [Errno 111] Connection refused')"
    errno = re.search(r"\[Errno -?\d+\] [^'\")]+", text)
    if errno:
        return errno.group(0)
    resolve = re.search(r"NameResolutionError\([^:]+: ([^'\")]+)", text)
    return resolve.group(1) if resolve else text


# The server answers a duplicate tenant slug or project name with exactly this message.
UNIQUENESS_VIOLATION = "Uniqueness violation."


def find_or_create(
    what: str,
    find: Callable[[], Optional[str]],
    create: Callable[[], Dict[str, Any]],
    payload_field: str,
) -> Tuple[str, bool]:
    """Return ``(id, created)`` for an object that must exist exactly once.

    Looks it up first; creates it if missing. When another bootstrap creates it between
    the lookup and the mutation, the server answers ``Uniqueness violation.`` and the
    object the other one created is used: concurrent starts converge on one object.
    """
    existing = find()
    if existing:
        return existing, False
    try:
        data = create()
    except GraphQLErrors as exc:
        if not exc.has(UNIQUENESS_VIOLATION):
            raise ApiError(f"creating {what} failed: {exc}") from None
        existing = find()
        if not existing:
            raise ApiError(
                f"creating {what} failed with {UNIQUENESS_VIOLATION!r}, yet it does not exist"
            ) from None
        return existing, False
    payload = data.get(payload_field)
    created = payload.get("id") if isinstance(payload, dict) else None
    if not created or not isinstance(created, str):
        raise ApiError(f"unexpected answer to {payload_field}: {data!r}"[:500])
    return created, True


def first_id(data: Dict[str, Any], field: str) -> Optional[str]:
    """The id of the first row of a Hasura list query, or None if there is none."""
    rows = data.get(field)
    if not isinstance(rows, list) or not all(
        isinstance(row, dict) and isinstance(row.get("id"), str) and row["id"] for row in rows
    ):
        raise ApiError(f"unexpected answer to the {field} query: {rows!r}"[:500])
    return rows[0]["id"] if rows else None
