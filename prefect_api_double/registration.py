"""Register flows and create flow runs against a Prefect Server API (or the double).

Everything here goes through Prefect Core 1.2.4's own client code (``Flow.register()``,
``Client.create_flow_run()``, ``Client.create_tenant()``, ``Client.create_project()``)
with the backend temporarily switched to ``server`` and the API URL pointed at
``api_url``, so the documents sent are exactly the real client's.

The configuration switch (:func:`server_backend`) changes Prefect's process-global
config for the duration of a ``with`` block: do not use these helpers from several
threads at once.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from typing import Any, Dict, Iterator, List, Optional

import prefect
from prefect.utilities.configuration import set_temporary_config


@contextlib.contextmanager
def server_backend(api_url: str, tenant_id: Optional[str] = None) -> Iterator[None]:
    """Temporarily set ``backend = "server"``, ``cloud.api = api_url`` (and the tenant)."""
    settings: Dict[str, Any] = {"backend": "server", "cloud.api": api_url}
    if tenant_id is not None:
        settings["cloud.tenant_id"] = tenant_id
    with set_temporary_config(settings):
        yield


def client(api_url: str, tenant_id: Optional[str] = None) -> prefect.Client:
    """A ``prefect.Client`` for ``api_url`` (use it inside :func:`server_backend`)."""
    return prefect.Client(api_server=api_url, tenant_id=tenant_id)


def create_tenant(api_url: str, name: str, slug: Optional[str] = None) -> str:
    """``Client.create_tenant``: raises ``ClientError`` (``Uniqueness violation.``) on a
    duplicate slug."""
    with server_backend(api_url):
        return client(api_url).create_tenant(name=name, slug=slug)


def create_project(
    api_url: str,
    name: str,
    tenant_id: Optional[str] = None,
    description: Optional[str] = None,
) -> str:
    """``Client.create_project``: returns the existing project's id on a duplicate name."""
    with server_backend(api_url, tenant_id):
        return client(api_url, tenant_id).create_project(name, project_description=description)


def load_flow(path: str, flow_name: Optional[str] = None) -> prefect.Flow:
    """Load a flow object from a Python file, the way ``prefect register`` does."""
    from prefect.utilities.storage import extract_flow_from_file

    return extract_flow_from_file(file_path=os.fspath(path), flow_name=flow_name)


def register_flow(
    flow: prefect.Flow,
    api_url: str,
    project_name: str,
    tenant_id: Optional[str] = None,
    labels: Optional[List[str]] = None,
    create_project_if_missing: bool = False,
    set_schedule_active: bool = True,
    version_group_id: Optional[str] = None,
    idempotency_key: Optional[str] = None,
    build: bool = True,
) -> str:
    """``flow.register(project_name=...)`` against ``api_url``; returns the flow id.

    With ``create_project_if_missing`` the project is created first (through
    ``Client.create_project``, which tolerates an existing project).
    """
    with server_backend(api_url, tenant_id):
        if create_project_if_missing:
            client(api_url, tenant_id).create_project(project_name)
        return flow.register(
            project_name=project_name,
            build=build,
            labels=labels,
            set_schedule_active=set_schedule_active,
            version_group_id=version_group_id,
            no_url=True,
            idempotency_key=idempotency_key,
        )


def create_flow_run(
    api_url: str,
    flow_id: Optional[str] = None,
    version_group_id: Optional[str] = None,
    parameters: Optional[Dict[str, Any]] = None,
    labels: Optional[List[str]] = None,
    run_name: Optional[str] = None,
    context: Optional[Dict[str, Any]] = None,
    scheduled_start_time: Optional[datetime.datetime] = None,
    idempotency_key: Optional[str] = None,
    run_config: Any = None,
    tenant_id: Optional[str] = None,
) -> str:
    """``Client.create_flow_run(...)`` against ``api_url``; returns the flow run id."""
    with server_backend(api_url, tenant_id):
        return client(api_url, tenant_id).create_flow_run(
            flow_id=flow_id,
            version_group_id=version_group_id,
            parameters=parameters,
            labels=labels,
            run_name=run_name,
            context=context,
            scheduled_start_time=scheduled_start_time,
            idempotency_key=idempotency_key,
            run_config=run_config,
        )
