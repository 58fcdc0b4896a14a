"""``python -m bootstrap.flowrun execute flow-run``: prefect's flow runner in this process,
with SIGTERM (a node drain, an eviction, ``docker kill -s TERM``) turned into a Failed state
that says so before the container exits, instead of a run left Running for the zombie
killer. The image's entrypoint runs flow runs this way (bootstrap.container).

SIGINT is left to prefect: its flow runner cancels a run by sending itself SIGINT, and
``docker stop`` (the image's STOPSIGNAL) ends in an exit 130 the agent reports.

The run's heartbeat comes from a small process of this image's (bootstrap.flowrun.heartbeat),
started here before prefect loads, in place of prefect's own."""

from __future__ import annotations

import os
import signal
import sys
import urllib.request  # noqa: F401 - loaded now: the stop handler's report must not import
from typing import Sequence

from bootstrap.flowrun.heartbeat import MODE_ENV, take_over
from bootstrap.flowrun.report import FlowRunRole
from bootstrap.util.log import configure_logging_from

STOP_SIGNALS = (signal.SIGTERM,)


def stopped_message(signum: int) -> str:
    return (
        f"the flow-run container was stopped by {signal.Signals(signum).name} (a node "
        "drain, an eviction, docker kill) while the run was going on"
    )


def main(argv: Sequence[str]) -> int:
    configure_logging_from(os.environ)
    role = FlowRunRole.detect(os.environ, ["prefect", *argv])

    def on_stop(signum: int, frame: object) -> None:
        if role is not None:
            role.fail(stopped_message(signum))
        os._exit(128 + signum)  # now: the flow runner's threads would keep the process up

    for signum in STOP_SIGNALS:
        signal.signal(signum, on_stop)
    heartbeat = take_over(role, os.environ)  # before prefect reads its configuration
    from prefect.cli import cli as prefect_cli

    if heartbeat is not None:  # prefect has read it: interpreters the tasks start get its default
        del os.environ[MODE_ENV]
    try:
        prefect_cli.main(args=list(argv), prog_name="prefect")  # exits with its own code
    finally:
        if heartbeat is not None:
            heartbeat.stdin.close()  # its lifeline: it ends now (or after a request in flight)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
