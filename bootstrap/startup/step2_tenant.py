"""Find the tenant by slug, or create it; safe when several bootstraps race."""

from __future__ import annotations

from typing import Optional

from bootstrap.api.client import PrefectApi, find_or_create, first_id
from bootstrap.util.errors import BootstrapError
from bootstrap.util.log import logger

TENANT_BY_SLUG = """
query TenantBySlug($slug: String!) {
  tenant(where: {slug: {_eq: $slug}}) { id name slug }
}
"""

CREATE_TENANT = """
mutation CreateTenant($input: create_tenant_input!) {
  create_tenant(input: $input) { id }
}
"""


def find_tenant(api: PrefectApi, slug: str) -> Optional[str]:
    return first_id(api.execute(TENANT_BY_SLUG, {"slug": slug}), "tenant")


def ensure_tenant(api: PrefectApi, name: str, slug: str) -> str:
    """Return the id of the tenant with ``slug``, creating it (named ``name``) if missing."""
    tenant_id, created = find_or_create(
        f"tenant {slug!r}",
        find=lambda: find_tenant(api, slug),
        create=lambda: api.execute(CREATE_TENANT, {"input": {"name": name, "slug": slug}}),
        payload_field="create_tenant",
    )
    logger.info("%s tenant %r (id %s)", "Created" if created else "Using", slug, tenant_id)
    return tenant_id


def existing_tenant(api: PrefectApi, slug: str) -> str:
    """The tenant's id; it must exist already (``agent`` run on its own)."""
    found = find_tenant(api, slug)
    if found is None:
        raise BootstrapError(
            f"tenant {slug!r} does not exist: run "
            "'prefect-agent-bootstrap tenant' first, or pass --tenant-id"
        )
    return found
