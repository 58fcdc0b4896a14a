"""``flow.register()`` and ``Client.create_flow_run()`` of prefect 1.2.4 against the double."""

from __future__ import annotations

import datetime

import pytest
from prefect.exceptions import ClientError

from prefect_api_double import registration

from .helpers import OK_FLOW, REQUIRED_PARAM_FLOW, data


@pytest.fixture
def project(prefect_api, prefect_api_tenant):
    prefect_api.create_project("proj", prefect_api_tenant)
    return "proj"


def _register(prefect_api, path=OK_FLOW, **kwargs):
    flow = registration.load_flow(str(path))
    return registration.register_flow(flow, prefect_api.url, "proj", **kwargs)


def test_register_a_flow_the_way_flow_register_does(prefect_api, project):
    flow_id = _register(prefect_api, labels=["L"])

    assert prefect_api.fields_called() == [
        "project",
        "create_flow_from_compressed_string",
        "register_tasks",
        "register_edges",
        "set_schedule_active",
    ]
    flow = prefect_api.flow(flow_id)
    assert flow["name"] == "ok-flow"
    assert flow["version"] == 1
    assert flow["archived"] is False
    assert flow["core_version"] == "1.2.4"
    assert flow["storage"]["type"] == "Local"
    assert flow["storage"]["path"] == str(OK_FLOW)
    assert "L" in flow["run_config"]["labels"]
    assert [p["name"] for p in flow["parameters"]] == ["n"]
    assert flow["is_schedule_active"] is False  # no schedule: set_schedule_active is a no-op
    slugs = sorted(t["slug"] for t in prefect_api.tasks(flow_id))
    assert slugs == ["double-1", "n", "numbers-1", "total-1"]
    # register_tasks also adds the tasks to the stored serialized flow
    assert sorted(t["slug"] for t in flow["serialized_flow"]["tasks"]) == slugs
    edges = prefect_api.store.find("edge", flow_id=flow_id)
    assert len(edges) == 3
    assert sum(e["mapped"] for e in edges) == 1


def test_registering_again_bumps_the_version_and_archives_the_old_one(prefect_api, project):
    first = _register(prefect_api)
    second = _register(prefect_api)
    assert prefect_api.flow(second)["version"] == 2
    assert prefect_api.flow(first)["archived"] is True
    assert (
        prefect_api.flow(first)["version_group_id"] == prefect_api.flow(second)["version_group_id"]
    )
    # an idempotency key that matches the last registration returns that flow
    third = _register(prefect_api, idempotency_key="k")
    assert _register(prefect_api, idempotency_key="k") == third


def test_register_requires_an_existing_project(prefect_api, prefect_api_tenant):
    flow = registration.load_flow(str(OK_FLOW))
    with pytest.raises(ValueError, match="Project nope not found"):
        registration.register_flow(flow, prefect_api.url, "nope")


def test_create_flow_run_with_parameters_and_labels(prefect_api, project):
    flow_id = _register(prefect_api, labels=["L"])
    run_id = registration.create_flow_run(
        prefect_api.url, flow_id=flow_id, parameters={"n": 5}, labels=["z", "L"], run_name="r1"
    )
    run = prefect_api.flow_run(run_id)
    assert run["state"] == "Scheduled"
    assert run["version"] == 1
    assert run["labels"] == ["L", "z"]  # sorted, like the server
    assert run["parameters"] == {"n": 5}
    assert run["name"] == "r1"
    assert run["serialized_state"]["type"] == "Scheduled"
    assert run["serialized_state"]["message"] == "Flow run scheduled."
    assert run["state_start_time"] == run["scheduled_start_time"]
    # a Pending task run (map_index -1, version 0) per task, created with the flow run
    task_runs = prefect_api.task_runs(run_id)
    assert [(t["task_slug"], t["map_index"], t["state"], t["version"]) for t in task_runs] == [
        ("double-1", -1, "Pending", 0),
        ("n", -1, "Pending", 0),
        ("numbers-1", -1, "Pending", 0),
        ("total-1", -1, "Pending", 0),
    ]
    create = prefect_api.requests_for("create_flow_run")[0]
    assert create.input == {
        "flow_id": flow_id,
        "parameters": {"n": 5},
        "labels": ["z", "L"],
        "flow_run_name": "r1",
    }


def test_flow_run_defaults_come_from_the_flow(prefect_api, project):
    flow_id = _register(prefect_api, labels=["L"])
    run_id = registration.create_flow_run(prefect_api.url, flow_id=flow_id)
    run = prefect_api.flow_run(run_id)
    flow = prefect_api.flow(flow_id)
    assert run["parameters"] == {"n": 3}
    assert run["labels"] == sorted(flow["run_config"]["labels"])
    assert run["run_config"] == flow["run_config"]
    assert run["name"]  # a generated adjective-animal name


def test_create_flow_run_errors(prefect_api, project):
    flow_id = _register(prefect_api, path=REQUIRED_PARAM_FLOW)
    with pytest.raises(ClientError, match=r"Required parameters were not supplied: \{'who'\}"):
        registration.create_flow_run(prefect_api.url, flow_id=flow_id)
    assert registration.create_flow_run(prefect_api.url, flow_id=flow_id, parameters={"who": 1})
    missing = "0c7e6c2e-1111-4222-8333-944455556666"
    with pytest.raises(ClientError, match=f"Flow {missing} not found"):
        registration.create_flow_run(prefect_api.url, flow_id=missing)


def test_scheduled_start_time_and_idempotency_key(prefect_api, project):
    flow_id = _register(prefect_api)
    later = datetime.datetime(2031, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    run_id = registration.create_flow_run(
        prefect_api.url, flow_id=flow_id, scheduled_start_time=later, idempotency_key="once"
    )
    again = registration.create_flow_run(prefect_api.url, flow_id=flow_id, idempotency_key="once")
    assert again == run_id
    assert len(prefect_api.flow_runs(flow_id)) == 1
    assert prefect_api.flow_run(run_id)["scheduled_start_time"] == later


def test_version_group_id_runs_the_unarchived_version(prefect_api, project):
    _register(prefect_api)
    newest = _register(prefect_api)
    group = prefect_api.flow(newest)["version_group_id"]
    run_id = registration.create_flow_run(prefect_api.url, version_group_id=group)
    assert prefect_api.flow_run(run_id)["flow_id"] == newest


def test_the_agents_flow_run_query_works(prefect_api, project):
    """The query an agent sends for run metadata, with its relationship filter."""
    flow_id = _register(prefect_api, labels=["L"])
    run_id = registration.create_flow_run(prefect_api.url, flow_id=flow_id, labels=["L"])
    query = """
    query($ids: [uuid!], $buffer: timestamptz) {
      flow_run(where: {id: {_in: $ids}, _or: [{state: {_eq: "Scheduled"}},
               {state: {_eq: "Running"}, task_runs: {state_start_time: {_lte: $buffer}}}]}) {
        id version state serialized_state parameters scheduled_start_time run_config name
        flow { id name environment storage version core_version }
        task_runs(where: {state_start_time: {_lte: $buffer}}) {
          id version task_id serialized_state
        }
      }
    }"""
    variables = {"ids": [run_id], "buffer": "2100-01-01T00:00:00+00:00"}
    (run,) = data(prefect_api.execute(query, variables))["flow_run"]
    assert run["id"] == run_id
    assert run["state"] == "Scheduled"
    assert run["flow"]["storage"]["type"] == "Local"
    assert run["flow"]["core_version"] == "1.2.4"
    assert run["task_runs"] == []  # Pending task runs have no state_start_time
    assert run["scheduled_start_time"].endswith("+00:00")
