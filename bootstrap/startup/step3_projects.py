"""Create the configured projects inside the tenant, each only if it is missing.

Prefect's own ``Client.create_project`` falls back to a lookup by name *across all
tenants*; this module always filters by tenant, so it is right on multi-tenant servers.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

from bootstrap.api.client import PrefectApi, find_or_create, first_id
from bootstrap.settings import ProjectSpec
from bootstrap.util.log import logger

PROJECT_IN_TENANT = """
query ProjectInTenant($tenant_id: uuid!, $name: String!) {
  project(where: {tenant_id: {_eq: $tenant_id}, name: {_eq: $name}}) { id name }
}
"""

CREATE_PROJECT = """
mutation CreateProject($input: create_project_input!) {
  create_project(input: $input) { id }
}
"""


def find_project(api: PrefectApi, tenant_id: str, name: str) -> Optional[str]:
    variables = {"tenant_id": tenant_id, "name": name}
    return first_id(api.execute(PROJECT_IN_TENANT, variables), "project")


def ensure_project(api: PrefectApi, tenant_id: str, spec: ProjectSpec) -> str:
    """Return the id of project ``spec.name`` in the tenant, creating it if missing."""
    project_input = {"tenant_id": tenant_id, "name": spec.name}
    if spec.description is not None:
        project_input["description"] = spec.description
    project_id, created = find_or_create(
        f"project {spec.name!r}",
        find=lambda: find_project(api, tenant_id, spec.name),
        create=lambda: api.execute(CREATE_PROJECT, {"input": project_input}),
        payload_field="create_project",
    )
    logger.info("%s project %r (id %s)", "Created" if created else "Using", spec.name, project_id)
    return project_id


def ensure_projects(
    api: PrefectApi, tenant_id: str, specs: Sequence[ProjectSpec]
) -> Dict[str, str]:
    """Project name -> id, for every configured project."""
    return {spec.name: ensure_project(api, tenant_id, spec) for spec in specs}
