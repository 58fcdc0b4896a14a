"""TEST DOUBLE of Prefect Server's GraphQL API -- NOT a Prefect Server.

*** This package is a test double. It exists because the real Prefect Server (Postgres +
Hasura + the GraphQL service + Apollo, run from container images) cannot run on the
hosts this project is built and tested on. Never point production agents at it. ***

It is an in-memory, single-process stand-in for the API that Prefect Core 1.2.4's
``Client``, agents (``prefect agent ... start``) and flow-run processes
(``prefect execute flow-run``) talk to, faithful to PrefectHQ/server where those clients
can observe it: the same GraphQL schema names and types (see ``schema.graphql``), the
same validation, the same mutation semantics and error messages (``Uniqueness
violation.``, ...), the same queue and label rules, the Submitted-state lock of each
GraphQL replica, and (on request, on a clock tests may speed up) the background services
that act on runs: Lazarus and the zombie killer (``towel``). It runs no scheduler, no
cloud hooks, and has no authentication.

Typical use::

    from prefect_api_double import PrefectApiDouble

    with PrefectApiDouble() as api:          # 127.0.0.1, ephemeral port
        tenant_id = api.create_tenant("test")
        ...  # point PREFECT__CLOUD__API=api.url, PREFECT__BACKEND=server at it
        assert "register_agent" in api.fields_called()
        api.flow_run(run_id)["state"]

In pytest, use the ``prefect_api`` fixture from ``tests.fixtures.prefect_api``. To run
it by hand: ``python -m prefect_api_double serve --port 4200``.

Modules: ``server`` (HTTP, recording, faults, accessors), ``graphql_app`` (schema
wiring and the Apollo-like request pipeline), ``service`` (the GraphQL service's
mutations), ``hasura`` (the where/order_by/limit engine), ``store`` (tables,
constraints, triggers), ``tables`` (table metadata), ``towel`` (Lazarus, the zombie
killer), ``sdlgen`` (generates the Hasura part of ``schema.graphql``), ``registration``
(register flows / create runs with the real Prefect client).
"""

from .server import PrefectApiDouble, RecordedRequest

__all__ = ["PrefectApiDouble", "RecordedRequest"]
