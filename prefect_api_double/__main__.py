"""Command line for the Prefect Server API TEST DOUBLE.

    python -m prefect_api_double serve [--host 127.0.0.1] [--port 0] [--verbose]
    python -m prefect_api_double create-tenant --api URL NAME [--slug SLUG]
    python -m prefect_api_double create-project --api URL NAME [--tenant-id ID]
    python -m prefect_api_double register-flow --api URL --project NAME FILE
        [--flow-name NAME] [--label L]... [--tenant-id ID] [--create-project]
    python -m prefect_api_double create-flow-run --api URL (--flow-id ID |
        --version-group-id ID) [--param KEY=JSON]... [--label L]... [--run-name NAME]
        [--tenant-id ID]

``serve`` prints the URL on the first line of stdout, then serves until SIGINT or
SIGTERM. The other subcommands work against any Prefect Server API (they use Prefect's
own client) and print the new object's id.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from typing import Any, Dict, List, Optional


class _Stop(Exception):
    """Raised by the SIGINT/SIGTERM handler of ``serve``."""


def _serve(args: argparse.Namespace) -> int:
    from .server import PrefectApiDouble

    double = PrefectApiDouble(host=args.host, port=args.port)
    if args.verbose:

        def log(record: Any) -> None:
            print(
                f"{record.method} {record.path} {record.operation_type} "
                f"{','.join(record.fields)} -> {record.status}"
                + (f" {record.errors[0]['message']!r}" if record.errors else ""),
                file=sys.stderr,
                flush=True,
            )

        double.request_listener = log

    def on_signal(signum: int, frame: Any) -> None:
        # no locks in a signal handler (an Event.set() here can deadlock the main
        # thread): leave the sleep below by raising, and ignore further signals
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise _Stop

    # handlers first: a signal sent as soon as the URL is printed must stop us cleanly
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        double.start()
        print(double.url, flush=True)
        while True:
            time.sleep(3600)
    except _Stop:
        pass
    finally:
        double.stop()
    return 0


def _parse_params(pairs: List[str]) -> Optional[Dict[str, Any]]:
    if not pairs:
        return None
    params: Dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise SystemExit(f"--param expects KEY=VALUE, got {pair!r}")
        try:
            params[key] = json.loads(raw)
        except ValueError:
            params[key] = raw  # a plain string
    return params


def _create_tenant(args: argparse.Namespace) -> int:
    from . import registration

    print(registration.create_tenant(args.api, args.name, slug=args.slug))
    return 0


def _create_project(args: argparse.Namespace) -> int:
    from . import registration

    print(registration.create_project(args.api, args.name, tenant_id=args.tenant_id))
    return 0


def _register_flow(args: argparse.Namespace) -> int:
    from prefect.storage import Local

    from . import registration

    flow = registration.load_flow(args.file, flow_name=args.flow_name)
    if flow.storage is None:
        flow.storage = Local(path=str(args.file), stored_as_script=True)
    flow_id = registration.register_flow(
        flow,
        args.api,
        args.project,
        tenant_id=args.tenant_id,
        labels=args.label or None,
        create_project_if_missing=args.create_project,
    )
    print(flow_id)
    return 0


def _create_flow_run(args: argparse.Namespace) -> int:
    from . import registration

    if not (args.flow_id or args.version_group_id):
        raise SystemExit("one of --flow-id or --version-group-id is required")
    run_id = registration.create_flow_run(
        args.api,
        flow_id=args.flow_id,
        version_group_id=args.version_group_id,
        parameters=_parse_params(args.param),
        labels=args.label,
        run_name=args.run_name,
        tenant_id=args.tenant_id,
    )
    print(run_id)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m prefect_api_double",
        description="TEST DOUBLE of Prefect Server's GraphQL API (not a Prefect Server).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the double until SIGINT/SIGTERM")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0 (default) picks a free port")
    serve.add_argument("--verbose", action="store_true", help="log each request to stderr")
    serve.set_defaults(func=_serve)

    tenant = sub.add_parser("create-tenant", help="Client.create_tenant")
    tenant.add_argument("--api", required=True, help="API URL, e.g. http://127.0.0.1:4200")
    tenant.add_argument("name")
    tenant.add_argument("--slug")
    tenant.set_defaults(func=_create_tenant)

    project = sub.add_parser("create-project", help="Client.create_project")
    project.add_argument("--api", required=True)
    project.add_argument("name")
    project.add_argument("--tenant-id")
    project.set_defaults(func=_create_project)

    register = sub.add_parser("register-flow", help="flow.register() a flow from a file")
    register.add_argument("--api", required=True)
    register.add_argument("--project", required=True)
    register.add_argument("file")
    register.add_argument("--flow-name")
    register.add_argument("--label", action="append", default=[])
    register.add_argument("--tenant-id")
    register.add_argument("--create-project", action="store_true")
    register.set_defaults(func=_register_flow)

    run = sub.add_parser("create-flow-run", help="Client.create_flow_run")
    run.add_argument("--api", required=True)
    run.add_argument("--flow-id")
    run.add_argument("--version-group-id")
    run.add_argument("--param", action="append", default=[], help="KEY=JSON value")
    run.add_argument("--label", action="append", default=None)
    run.add_argument("--run-name")
    run.add_argument("--tenant-id")
    run.set_defaults(func=_create_flow_run)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
