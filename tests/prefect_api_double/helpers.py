"""Helpers shared by the tests of the Prefect Server API double."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import requests

FLOWS = Path(__file__).with_name("flows")
OK_FLOW = FLOWS / "ok_flow.py"
FAILING_FLOW = FLOWS / "failing_flow.py"
REQUIRED_PARAM_FLOW = FLOWS / "required_param_flow.py"


def post(
    url: str,
    query: str,
    variables: Any = None,
    headers: Optional[Dict[str, str]] = None,
    variables_as_string: bool = True,
) -> Tuple[int, Any]:
    """POST like the Prefect client does (variables as a JSON string by default)."""
    body = {
        "query": query,
        "variables": json.dumps(variables) if variables_as_string else variables,
    }
    response = requests.post(url, json=body, headers=headers or {}, timeout=10)
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, response.text


def messages(payload: Any) -> list:
    return [e["message"] for e in (payload or {}).get("errors", [])]


def data(payload: Dict[str, Any]) -> Dict[str, Any]:
    assert not payload.get("errors"), payload.get("errors")
    return payload["data"]


CREATE_TENANT = "mutation($input: create_tenant_input!) { create_tenant(input: $input) { id } }"
CREATE_PROJECT = "mutation($input: create_project_input!) { create_project(input: $input) { id } }"
SET_FLOW_RUN_STATES = (
    "mutation($input: set_flow_run_states_input!) {"
    " set_flow_run_states(input: $input) { states { id status message } } }"
)
SET_TASK_RUN_STATES = (
    "mutation($input: set_task_run_states_input!) {"
    " set_task_run_states(input: $input) { states { id status message } } }"
)
GET_RUNS_IN_QUEUE = (
    "mutation($input: get_runs_in_queue_input!) {"
    " get_runs_in_queue(input: $input) { flow_run_ids } }"
)
REGISTER_AGENT = "mutation($input: register_agent_input!) { register_agent(input: $input) { id } }"
