"""Tenant and projects against the API double: created once, idempotent, race-safe."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from bootstrap.api.client import ApiConfig, PrefectApi
from bootstrap.settings import ProjectSpec
from bootstrap.startup.step2_tenant import TENANT_BY_SLUG, ensure_tenant
from bootstrap.startup.step3_projects import PROJECT_IN_TENANT, ensure_projects
from bootstrap.util.errors import ApiError
from prefect_api_double import PrefectApiDouble

PROJECTS = [ProjectSpec(name="lume"), ProjectSpec(name="models", description="LUME models")]


def bootstrap_api(double: PrefectApiDouble) -> PrefectApi:
    return PrefectApi(ApiConfig(double.url))


def test_first_run_creates_second_run_creates_nothing(prefect_api: PrefectApiDouble) -> None:
    api = bootstrap_api(prefect_api)
    tenant_id = ensure_tenant(api, "LUME", "lume")
    projects = ensure_projects(api, tenant_id, PROJECTS)
    assert [t["slug"] for t in prefect_api.tenants()] == ["lume"]
    stored = {p["name"]: p for p in prefect_api.projects(tenant_id)}
    assert stored["models"]["description"] == "LUME models"
    assert projects == {name: project["id"] for name, project in stored.items()}
    assert prefect_api.fields_called("mutation") == [
        "create_tenant",
        "create_project",
        "create_project",
    ]

    prefect_api.clear_requests()
    again = bootstrap_api(prefect_api)
    assert ensure_tenant(again, "LUME", "lume") == tenant_id
    assert ensure_projects(again, tenant_id, PROJECTS) == projects
    assert prefect_api.fields_called("mutation") == []  # nothing created the second time
    assert len(prefect_api.tenants()) == 1
    assert len(prefect_api.projects()) == 2


def test_projects_are_looked_up_within_the_tenant(prefect_api: PrefectApiDouble) -> None:
    other = prefect_api.create_tenant("Other", slug="other")
    prefect_api.create_project("lume", tenant_id=other)
    api = bootstrap_api(prefect_api)
    tenant_id = ensure_tenant(api, "LUME", "lume")
    project_id = ensure_projects(api, tenant_id, [ProjectSpec(name="lume")])["lume"]
    owners = {p["id"]: p["tenant_id"] for p in prefect_api.projects()}
    assert owners[project_id] == tenant_id  # not the other tenant's project of that name
    assert len(owners) == 2


class RacingApi(PrefectApi):
    """Lets another agent create the object right after our first lookup answered."""

    def __init__(self, double: PrefectApiDouble, lookup: str, rival) -> None:
        super().__init__(ApiConfig(double.url))
        self.lookup, self.rival, self.rival_id = lookup, rival, None

    def execute(self, query, variables=None):
        data = super().execute(query, variables)
        if self.rival_id is None and query == self.lookup:
            self.rival_id = self.rival()
        return data


def test_losing_the_creation_race_uses_the_winners_tenant(prefect_api: PrefectApiDouble) -> None:
    api = RacingApi(prefect_api, TENANT_BY_SLUG, lambda: prefect_api.create_tenant("LUME", "lume"))
    tenant_id = ensure_tenant(api, "LUME", "lume")
    assert tenant_id == api.rival_id
    (create,) = prefect_api.requests_for("create_tenant")
    assert [error["message"] for error in create.errors] == ["Uniqueness violation."]
    assert len(prefect_api.tenants()) == 1


def test_losing_the_project_race_uses_the_winners_project(prefect_api: PrefectApiDouble) -> None:
    tenant_id = prefect_api.create_tenant("LUME", slug="lume")
    api = RacingApi(
        prefect_api, PROJECT_IN_TENANT, lambda: prefect_api.create_project("lume", tenant_id)
    )
    assert ensure_projects(api, tenant_id, [ProjectSpec(name="lume")]) == {"lume": api.rival_id}
    (create,) = prefect_api.requests_for("create_project")
    assert [error["message"] for error in create.errors] == ["Uniqueness violation."]


def test_other_creation_errors_are_not_swallowed(prefect_api: PrefectApiDouble) -> None:
    api = bootstrap_api(prefect_api)
    missing_tenant = "00000000-0000-4000-8000-000000000000"
    with pytest.raises(ApiError, match="creating project 'lume' failed"):
        ensure_projects(api, missing_tenant, [ProjectSpec(name="lume")])


def test_four_concurrent_bootstraps_leave_one_tenant_and_one_of_each_project(
    prefect_api: PrefectApiDouble,
) -> None:
    """Four real `prefect-agent-bootstrap projects` processes started at once."""
    env = {
        **os.environ,
        "PREFECT__CLOUD__API": prefect_api.url,
        "BOOTSTRAP_TENANT": "LUME",
        "BOOTSTRAP_PROJECTS": "lume,models,benchmarks",
    }
    command = [sys.executable, "-m", "bootstrap", "projects"]

    def start_one(_: int) -> subprocess.CompletedProcess:
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(start_one, range(4)))
    for result in results:
        assert result.returncode == 0, result.stderr
    assert len(prefect_api.tenants()) == 1
    names = sorted(p["name"] for p in prefect_api.projects())
    assert names == ["benchmarks", "lume", "models"]
    outputs = {result.stdout for result in results}
    assert len(outputs) == 1  # every bootstrap reports the same project ids
