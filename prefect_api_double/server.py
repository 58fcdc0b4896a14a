"""HTTP front of the double: :class:`PrefectApiDouble`.

A stdlib ``ThreadingHTTPServer`` bound to 127.0.0.1 (ephemeral port by default) that
answers GraphQL POSTs at any path, records every request, and offers fault injection and
convenient read accessors for tests.
"""

from __future__ import annotations

import contextlib
import copy
import json
import sys
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Deque, Dict, Iterable, List, Optional, Tuple, TypeVar
from urllib.parse import parse_qs, urlsplit

from .graphql_app import GraphQLApp, RequestError, describe_document
from .store import Store
from .towel import BackgroundServices, Clock

T = TypeVar("T")

FAULT_KINDS = ("status", "garbage", "drop")
STALL_LIMIT_SECONDS = 900.0  # a stalled request is answered after this, whatever happens
GARBAGE_BODY = b"<html><body>502 Bad Gateway</body></html>\x00{not json"


@dataclass
class RecordedRequest:
    """One HTTP request the double received (and what it answered)."""

    time: float
    method: str
    path: str
    headers: Dict[str, str]
    body: bytes
    query: Optional[str]
    variables: Any
    operation_name: Optional[str]
    operation_type: Optional[str]  # "query" | "mutation" | "subscription" | None
    fields: List[str]  # top-level field names (not aliases) of the operation(s)
    status: Optional[int] = None
    response: Any = None  # parsed JSON answer, or None (faults, text answers)
    fault: Optional[str] = None  # "status" | "garbage" | "drop" when one was injected

    def header(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """A request header, case-insensitively."""
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return default

    @property
    def errors(self) -> List[dict]:
        if isinstance(self.response, dict):
            return list(self.response.get("errors") or [])
        return []

    @property
    def input(self) -> Any:
        """``variables["input"]`` when the operation used an ``$input`` variable."""
        if isinstance(self.variables, dict):
            return self.variables.get("input")
        return None


@dataclass
class _Fault:
    kind: str
    status: int = 500
    body: bytes = b""


@dataclass
class _State:
    requests: List[RecordedRequest] = field(default_factory=list)
    faults: Deque[_Fault] = field(default_factory=deque)


class _Handler(BaseHTTPRequestHandler):
    server_version = "PrefectApiDouble/1"
    protocol_version = "HTTP/1.0"

    @property
    def double(self) -> PrefectApiDouble:
        return self.server.double  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean; requests are recorded instead

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.double._serve(self, "POST", body)

    def do_GET(self) -> None:
        self.double._serve(self, "GET", b"")

    def send_payload(self, status: int, payload: Any) -> None:
        if isinstance(payload, (bytes, str)):
            data = payload.encode() if isinstance(payload, str) else payload
            content_type = "text/html; charset=utf-8"
        else:
            data = json.dumps(payload).encode()
            content_type = "application/json; charset=utf-8"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # bursts of agent/flow-run requests must not hit SYN retries

    def __init__(self, address: Tuple[str, int], double: PrefectApiDouble) -> None:
        self.double = double
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up before its answer (a container stopped mid-request) is
        # normal; anything else is still printed, as socketserver does.
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


class PrefectApiDouble:
    """A TEST DOUBLE of Prefect Server's GraphQL API (see the package docstring).

    >>> double = PrefectApiDouble().start()
    >>> double.url            # e.g. "http://127.0.0.1:41234"
    >>> double.stop()

    State survives :meth:`stop` / :meth:`start` (the database outlives the API
    process); :meth:`start` after :meth:`stop` reuses the same port.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        submitted_lock_seconds: float = 30.0,
        graphql_replicas: int = 1,
        services_speedup: Optional[float] = None,
    ) -> None:
        """``graphql_replicas``: GraphQL service processes behind the gateway, each with its
        own in-memory Submitted-state lock (requests go round-robin, as a load balancer
        sends them). ``services_speedup``: run Lazarus and the zombie killer (towel) that
        many times faster than the real server; None: not at all."""
        self.host = host
        self.port = port
        self.store = Store()
        self.app = GraphQLApp(
            self.store, submitted_lock_seconds=submitted_lock_seconds, replicas=graphql_replicas
        )
        self.services: Optional[BackgroundServices] = None
        self.clock = Clock(services_speedup or 1.0)
        if services_speedup is not None:
            self.services = BackgroundServices(self.store, self.clock)
        self._state = _State()
        self._state_lock = threading.Lock()
        self._stalls: Dict[str, threading.Event] = {}
        self._server: Optional[_HTTPServer] = None
        self._thread: Optional[threading.Thread] = None
        self._lifecycle = threading.Lock()
        self._started_once = False
        # tracebacks of unexpected exceptions in the double itself (answered with HTTP 500)
        self.internal_errors: List[str] = []
        # optional callable(RecordedRequest) called after each request was answered
        self.request_listener: Optional[Callable[[RecordedRequest], None]] = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234``; any path on it works too."""
        return f"http://{self.host}:{self.port}"

    @property
    def graphql_url(self) -> str:
        return f"{self.url}/graphql"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> PrefectApiDouble:
        """Start serving (in a background thread); returns self. Idempotent."""
        with self._lifecycle:
            if self._server is not None:
                return self
            if self._started_once:
                # a restarted API process forgets its in-memory Submitted-state locks
                self.app.reset_process_state()
            server = _HTTPServer((self.host, self.port), self)
            self.port = server.server_address[1]
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"prefect-api-double:{self.port}",
                daemon=True,
            )
            thread.start()
            self._server, self._thread = server, thread
            self._started_once = True
            if self.services is not None and not self.services._threads:
                self.services.start()
            return self

    def stop(self) -> None:
        """Stop serving and close the socket; connections are then refused. Idempotent."""
        with self._lifecycle:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        self.release()  # stalled requests end with the server
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def restart(self, down_for: float = 0.0) -> None:
        """Stop, optionally stay down for ``down_for`` seconds, and start on the same port."""
        self.stop()
        if down_for:
            time.sleep(down_for)
        self.start()

    def __enter__(self) -> PrefectApiDouble:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving and stop the background services (which outlive a restart())."""
        self.stop()
        if self.services is not None:
            self.services.stop()

    # ------------------------------------------------------------------ faults

    def inject_faults(
        self, count: int = 1, kind: str = "status", status: int = 500, body: bytes = b""
    ) -> None:
        """Make the next ``count`` HTTP requests fail instead of being served.

        ``kind``: ``"status"`` answers HTTP ``status`` (default 500) with ``body``;
        ``"garbage"`` answers HTTP 200 with a body that is not JSON; ``"drop"`` closes
        the connection without answering. Faulted requests are recorded (``fault`` set)
        but not executed.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {FAULT_KINDS}")
        with self._state_lock:
            for _ in range(count):
                self._state.faults.append(_Fault(kind, status, body))

    def fail_next(self, count: int = 1, status: int = 500) -> None:
        """The next ``count`` requests answer HTTP ``status`` (500 by default).

        Note: the Prefect client retries 500/502/503/504 itself (6 retries with
        exponential backoff), so one injected 500 is usually invisible to it.
        """
        self.inject_faults(count, "status", status, b'{"errors": "Internal Server Error"}')

    def garbage_next(self, count: int = 1) -> None:
        """The next ``count`` requests answer HTTP 200 with a non-JSON body."""
        self.inject_faults(count, "garbage")

    def stall(self, field_name: str) -> None:
        """Hold every request for ``field_name`` (e.g. ``get_runs_in_queue``) unanswered until
        :meth:`release` (other operations are still served): a server that hangs."""
        with self._state_lock:
            self._stalls.setdefault(field_name, threading.Event()).clear()

    def release(self, field_name: Optional[str] = None) -> None:
        """Answer the stalled requests (of ``field_name``, or all) and stop stalling."""
        with self._state_lock:
            names = [field_name] if field_name else list(self._stalls)
            for name in names:
                event = self._stalls.pop(name, None)
                if event is not None:
                    event.set()

    def clear_faults(self) -> None:
        with self._state_lock:
            self._state.faults.clear()

    @property
    def pending_faults(self) -> int:
        with self._state_lock:
            return len(self._state.faults)

    # ------------------------------------------------------------------ serving

    def _serve(self, handler: _Handler, method: str, body: bytes) -> None:
        record = self._serve_one(handler, method, body)
        listener = self.request_listener
        if listener is not None:
            listener(record)

    def _serve_one(self, handler: _Handler, method: str, body: bytes) -> RecordedRequest:
        split = urlsplit(handler.path)
        headers = {k: v for k, v in handler.headers.items()}
        query = variables = operation_name = None
        if method == "POST":
            try:
                parsed = json.loads(body) if body else None
            except ValueError:
                parsed = None
            if isinstance(parsed, list):  # a batch: record the fields of every operation
                query = "\n".join(
                    p["query"]
                    for p in parsed
                    if isinstance(p, dict) and isinstance(p.get("query"), str)
                )
            if isinstance(parsed, dict):
                query = parsed.get("query")
                variables = parsed.get("variables")
                operation_name = parsed.get("operationName")
                if isinstance(variables, str):
                    with contextlib.suppress(ValueError):
                        variables = json.loads(variables)
        else:
            params = parse_qs(split.query)
            query = (params.get("query") or [None])[0]
            variables = (params.get("variables") or [None])[0]
            with contextlib.suppress(ValueError, TypeError):
                variables = json.loads(variables)
            operation_name = (params.get("operationName") or [None])[0]
        kind, fields, name = describe_document(query)
        record = RecordedRequest(
            time=time.time(),
            method=method,
            path=split.path,
            headers=headers,
            body=body,
            query=query,
            variables=variables,
            operation_name=operation_name or name,
            operation_type=kind,
            fields=fields,
        )
        with self._state_lock:
            fault = self._state.faults.popleft() if self._state.faults else None
            self._state.requests.append(record)
            stalls = [self._stalls[name] for name in fields if name in self._stalls]
        for stalled in stalls:
            stalled.wait(STALL_LIMIT_SECONDS)
        if fault is not None:
            record.fault = fault.kind
            if fault.kind == "drop":
                record.status = None
                handler.close_connection = True
                return record
            if fault.kind == "garbage":
                record.status = 200
                handler.send_payload(200, GARBAGE_BODY)
                return record
            record.status = fault.status
            handler.send_payload(fault.status, fault.body)
            return record
        status, payload = self._dispatch(method, split, body, headers, query)
        record.status = status
        record.response = None if isinstance(payload, (str, bytes)) else payload
        handler.send_payload(status, payload)
        return record

    def _dispatch(
        self, method: str, split: Any, body: bytes, headers: Dict[str, str], query: Any
    ) -> Tuple[int, Any]:
        try:
            if method == "POST":
                return self.app.handle(body, headers)
            if split.path.rstrip("/").endswith(".well-known/apollo/server-health"):
                return 200, {"status": "pass"}
            if not query:
                return 400, "GET query missing."
            kind, _, _ = describe_document(query)
            if kind not in (None, "query"):
                return 405, f"GET supports only query operation, not {kind}"
            params = parse_qs(split.query)
            raw_vars = (params.get("variables") or [None])[0]
            variables = json.loads(raw_vars) if raw_vars else None
            return self.app.execute(
                query, variables, headers, (params.get("operationName") or [None])[0]
            )
        except RequestError as exc:
            return exc.status, exc.text
        except ValueError:
            return 400, "Variables are invalid JSON."
        except Exception:  # a bug in the double: make it visible, do not hang the client
            text = traceback.format_exc()
            with self._state_lock:
                self.internal_errors.append(text)
            return 500, f"prefect_api_double internal error:\n{text}"

    # ------------------------------------------------------------------ in-process use

    def execute(
        self,
        query: str,
        variables: Optional[dict] = None,
        headers: Optional[Dict[str, str]] = None,
    ) -> Dict[str, Any]:
        """Run a GraphQL document in-process (not over HTTP, not recorded)."""
        _, payload = self.app.execute(query, variables, headers or {})
        return payload

    def _data_or_raise(self, payload: Dict[str, Any]) -> Dict[str, Any]:
        if payload.get("errors"):
            raise ValueError(payload["errors"][0]["message"])
        return payload["data"]

    def create_tenant(self, name: str, slug: Optional[str] = None) -> str:
        """Create a tenant through the API's own ``create_tenant`` mutation; returns its id."""
        from slugify import slugify

        data = self._data_or_raise(
            self.execute(
                "mutation($input: create_tenant_input!) { create_tenant(input: $input) { id } }",
                {"input": {"name": name, "slug": slug if slug is not None else slugify(name)}},
            )
        )
        return data["create_tenant"]["id"]

    def create_project(
        self, name: str, tenant_id: Optional[str] = None, description: Optional[str] = None
    ) -> str:
        """Create a project (in the first tenant unless ``tenant_id``); returns its id."""
        if tenant_id is None:
            tenants = self.store.all("tenant")
            if not tenants:
                raise ValueError("no tenant: create one first")
            tenant_id = tenants[0]["id"]
        data = self._data_or_raise(
            self.execute(
                "mutation($input: create_project_input!) { create_project(input: $input) { id } }",
                {"input": {"name": name, "tenant_id": tenant_id, "description": description}},
            )
        )
        return data["create_project"]["id"]

    # ------------------------------------------------------------------ recorded requests

    @property
    def requests(self) -> List[RecordedRequest]:
        """A copy of the list of recorded requests, oldest first."""
        with self._state_lock:
            return list(self._state.requests)

    def clear_requests(self) -> None:
        with self._state_lock:
            self._state.requests.clear()

    def fields_called(self, operation_type: Optional[str] = None) -> List[str]:
        """Top-level field names of all recorded requests, in order (with repeats).

        ``operation_type`` ("query" or "mutation") restricts to that kind.
        """
        return [
            f
            for r in self.requests
            if operation_type is None or r.operation_type == operation_type
            for f in r.fields
        ]

    def requests_for(self, field_name: str) -> List[RecordedRequest]:
        """Recorded requests whose operation selects ``field_name`` at the top level."""
        return [r for r in self.requests if field_name in r.fields]

    # ------------------------------------------------------------------ state accessors
    # All return deep copies of rows: dicts keyed by column name; uuids are strings,
    # timestamps timezone-aware datetimes, jsonb columns plain Python values.

    def _rows(self, table: str, where: Optional[Callable[[dict], bool]] = None) -> List[dict]:
        return self.store.snapshot(table, where)

    def _row(self, table: str, row_id: str) -> Optional[dict]:
        with self.store.lock:
            row = self.store.get(table, row_id)
            return copy.deepcopy(row) if row is not None else None

    def tenants(self) -> List[dict]:
        return self._rows("tenant")

    def tenant(self, tenant_id: str) -> Optional[dict]:
        return self._row("tenant", tenant_id)

    def projects(self, tenant_id: Optional[str] = None) -> List[dict]:
        return self._rows("project", lambda r: tenant_id is None or r["tenant_id"] == tenant_id)

    def flows(self, project_id: Optional[str] = None) -> List[dict]:
        return self._rows("flow", lambda r: project_id is None or r["project_id"] == project_id)

    def flow(self, flow_id: str) -> Optional[dict]:
        return self._row("flow", flow_id)

    def tasks(self, flow_id: str) -> List[dict]:
        return self._rows("task", lambda r: r["flow_id"] == flow_id)

    def flow_runs(self, flow_id: Optional[str] = None) -> List[dict]:
        return self._rows("flow_run", lambda r: flow_id is None or r["flow_id"] == flow_id)

    def flow_run(self, flow_run_id: str) -> Optional[dict]:
        return self._row("flow_run", flow_run_id)

    def flow_run_states(self, flow_run_id: str) -> List[dict]:
        """States of a flow run, oldest first."""
        rows = self._rows("flow_run_state", lambda r: r["flow_run_id"] == flow_run_id)
        return sorted(rows, key=lambda r: (r["version"] or 0, r["timestamp"]))

    def task_runs(self, flow_run_id: str) -> List[dict]:
        """Task runs of a flow run; each row also gets ``task_slug`` and ``task_name``."""
        with self.store.lock:
            rows = self._rows("task_run", lambda r: r["flow_run_id"] == flow_run_id)
            for row in rows:
                task = self.store.get("task", row["task_id"]) or {}
                row["task_slug"] = task.get("slug")
                row["task_name"] = task.get("name")
        return sorted(rows, key=lambda r: (r["task_slug"] or "", r["map_index"]))

    def task_run_states(self, task_run_id: str) -> List[dict]:
        rows = self._rows("task_run_state", lambda r: r["task_run_id"] == task_run_id)
        return sorted(rows, key=lambda r: (r["version"] or 0, r["timestamp"]))

    def logs(
        self, flow_run_id: Optional[str] = None, task_run_id: Optional[str] = None
    ) -> List[dict]:
        rows = self._rows(
            "log",
            lambda r: (
                (flow_run_id is None or r["flow_run_id"] == flow_run_id)
                and (task_run_id is None or r["task_run_id"] == task_run_id)
            ),
        )
        return sorted(rows, key=lambda r: r["timestamp"])

    def agents(self) -> List[dict]:
        return self._rows("agent")

    # ------------------------------------------------------------------ waiting

    @staticmethod
    def wait_until(
        predicate: Callable[[], T], timeout: float = 30.0, interval: float = 0.1, what: str = ""
    ) -> T:
        """Poll ``predicate`` until it returns something truthy; return that value."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what or predicate}")
            time.sleep(interval)

    def wait_for_flow_run_state(
        self,
        flow_run_id: str,
        states: Iterable[str] = ("Success", "Failed", "Cancelled"),
        timeout: float = 60.0,
    ) -> dict:
        """Wait until the flow run's ``state`` is one of ``states``; return the run row."""
        wanted = set(states)

        def check() -> Optional[dict]:
            run = self.flow_run(flow_run_id)
            return run if run and run["state"] in wanted else None

        try:
            return self.wait_until(check, timeout, what=f"flow run {flow_run_id} in {wanted}")
        except TimeoutError as exc:
            run = self.flow_run(flow_run_id)
            raise TimeoutError(f"{exc}; it is {run and run['state']!r}") from None
