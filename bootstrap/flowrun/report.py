"""A flow-run container speaking for its run before (and when) prefect's flow runner cannot:
its heartbeat (:mod:`bootstrap.flowrun.heartbeat`), and Failed with the reason when preparing
fails or a stop signal arrives. Standard library only: it runs before the heavy imports, in
the entrypoint and the heartbeat process.

The agent gives every flow-run container ``PREFECT__CONTEXT__FLOW_RUN_ID`` and the API's
address and key (``PREFECT__CLOUD__API``, ``PREFECT__CLOUD__API_KEY``); proxies and
NO_PROXY are honoured by urllib itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Sequence

from bootstrap.util.log import logger

RUN_ID_ENV = "PREFECT__CONTEXT__FLOW_RUN_ID"
FLOW_RUN_COMMAND = ("prefect", "execute", "flow-run")
HEARTBEAT_SECONDS = 30.0  # prefect's own flow-run heartbeat period (cloud.heartbeat_interval)
HEARTBEAT_ENV = "PREFECT__CLOUD__HEARTBEAT_INTERVAL"
FINISHED = ("Success", "Failed", "Cancelled", "Skipped", "TimedOut", "TriggerFailed")

HEARTBEAT = (
    "mutation($id: UUID!) { update_flow_run_heartbeat(input: {flow_run_id: $id}) { success } }"
)
STATE = "query($id: uuid!) { flow_run_by_pk(id: $id) { state } }"
FLOW_SETTINGS = "query($id: uuid!) { flow_run_by_pk(id: $id) { flow { settings } } }"
SET_STATE = (
    "mutation($input: set_flow_run_states_input!) { set_flow_run_states(input: $input) "
    "{ states { id } } }"
)
WRITE_LOGS = "mutation($input: write_run_logs_input!) { write_run_logs(input: $input) { success } }"


def ssl_context(ca_bundle: str) -> Any:
    """Trust what requests trusts for this bundle: a file of certificates, or a directory
    of hashed ones (requests takes either)."""
    import os
    import ssl

    if os.path.isdir(ca_bundle):
        return ssl.create_default_context(capath=ca_bundle)
    return ssl.create_default_context(cafile=ca_bundle)


@dataclass(frozen=True)
class FlowRunRole:
    """This container runs a flow run launched by an agent."""

    run_id: str
    api_url: str
    api_key: str = ""
    heartbeat_interval: float = HEARTBEAT_SECONDS
    ca_bundle: str = ""  # what prefect's client (requests) trusts instead of the system's

    @staticmethod
    def requests_ca_bundle(environ: Mapping[str, str]) -> str:
        """The bundle requests reads from the environment, in its order. urllib reads only
        SSL_CERT_FILE (OpenSSL's): an API behind a private CA given to requests alone would
        otherwise get prefect's requests and none of this container's."""
        return environ.get("REQUESTS_CA_BUNDLE") or environ.get("CURL_CA_BUNDLE") or ""

    @classmethod
    def detect(cls, environ: Mapping[str, str], argv: Sequence[str]) -> Optional[FlowRunRole]:
        run_id = environ.get(RUN_ID_ENV, "")
        api = environ.get("PREFECT__CLOUD__API", "")
        if not run_id or not api or tuple(argv[:3]) != FLOW_RUN_COMMAND:
            return None
        try:
            interval = float(environ.get(HEARTBEAT_ENV) or HEARTBEAT_SECONDS)
        except ValueError:
            interval = HEARTBEAT_SECONDS  # prefect's flow runner will say what is wrong
        key = environ.get("PREFECT__CLOUD__API_KEY", "")
        return cls(run_id, api, key, max(interval, 0.1), cls.requests_ca_bundle(environ))

    def post(self, query: str, variables: Dict[str, Any], timeout: float = 10) -> Dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        body = json.dumps({"query": query, "variables": variables}).encode()
        import urllib.request  # here: a container that never reports does not load it (20 ms)

        context = None
        if self.ca_bundle and self.api_url.lower().startswith("https:"):
            context = ssl_context(self.ca_bundle)
        request = urllib.request.Request(self.api_url, body, headers, method="POST")  # noqa: S310
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:  # noqa: S310
            payload = json.loads(response.read())
        if payload.get("errors"):
            raise RuntimeError(payload["errors"][0].get("message", "GraphQL error"))
        return payload["data"]

    def heartbeat(self) -> None:
        self.post(HEARTBEAT, {"id": self.run_id})

    def heartbeat_enabled(self) -> bool:
        """False if the flow's settings turn heartbeats off (what prefect's runner asks before
        it starts its own); True when the API cannot say: beating for nothing costs less than
        a run left without."""
        try:
            run = self.post(FLOW_SETTINGS, {"id": self.run_id})["flow_run_by_pk"]
            return (run or {}).get("flow", {}).get("settings", {}).get("heartbeat_enabled", True)
        except Exception as exc:
            logger.debug("cannot read the flow's heartbeat setting: %s", exc)
            return True

    def state(self) -> Optional[str]:
        run = self.post(STATE, {"id": self.run_id})["flow_run_by_pk"]
        return None if run is None else run["state"]

    def fail(self, message: str) -> bool:
        """Set the run Failed with ``message`` (and log it) unless it is finished already;
        True if this container did. Never raises: the container's exit is reported anyway."""
        try:
            if self.state() in FINISHED:
                return False
            log = {"flow_run_id": self.run_id, "name": "prefect-agent.flow-run",
                   "level": "ERROR", "message": message}  # fmt: skip
            self.post(WRITE_LOGS, {"input": {"logs": [log]}})
            state = {"type": "Failed", "message": message, "__version__": "1.2.4"}
            states = [{"flow_run_id": self.run_id, "state": state}]
            self.post(SET_STATE, {"input": {"states": states}})
        except Exception as exc:
            logger.warning("cannot report the flow run's failure to the API: %s", exc)
            return False
        return True
