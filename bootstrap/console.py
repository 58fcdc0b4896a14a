"""``prefect-agent-bootstrap``, the command: the image's entrypoint in front of a command of
its own (a flow run, ``docker run IMAGE python ...``) goes straight to it, without loading
the CLI (its settings, the API client and the agent launch: 0.1 s of imports that every
flow-run container would pay); everything else is :mod:`bootstrap.cli`."""

from __future__ import annotations

import os
import sys
from typing import List, Optional, Sequence

from bootstrap import container
from bootstrap.util.errors import BootstrapError
from bootstrap.util.log import logger, mask

PROG = "prefect-agent-bootstrap"
# The CLI's commands and help words: a container command that is one of them is the
# bootstrap's (``docker run IMAGE settings``). tests/bootstrap/test_console.py holds the
# list to bootstrap.cli's.
COMMANDS = frozenset(
    {"entrypoint", "run", "wait", "tenant", "projects", "agent", "settings", "extras",
     "healthcheck", "doctor", "kubernetes"}
)  # fmt: skip
HELP_WORDS = ("--help", "-h", "help")


def foreign_command(args: Sequence[str]) -> Optional[List[str]]:
    """The command of ``entrypoint [--] COMMAND...`` when it is not the bootstrap's own (nor
    empty: the default is the bootstrap's ``run``), else None."""
    if list(args[:1]) != ["entrypoint"]:
        return None
    command = list(args[1:])
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        return None
    if command[0] in HELP_WORDS or command[0] in COMMANDS:
        return None
    return command if container.is_bootstrap(command, PROG) is None else None


def exit_code_for(exc: BaseException) -> int:
    """Say what went wrong in one line (in the log once it is set up, else on stderr; never a
    traceback unless debugging) and return the exit code."""
    if isinstance(exc, BootstrapError):
        message = mask(str(exc))
        if logger.handlers:
            logger.error("%s", message)
        else:
            print(f"error: {message}", file=sys.stderr)
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return 130
    logger.debug("Unexpected error", exc_info=exc)
    message = mask(f"unexpected {type(exc).__name__}: {exc}")
    print(f"error: {message} (a bug: BOOTSTRAP_LOG_LEVEL=DEBUG shows where)", file=sys.stderr)
    return 1


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    command = foreign_command(args)
    if command is None:
        from bootstrap.cli import main as cli_main

        cli_main(args)
        return
    try:
        container.prepare_container(os.environ, command)
        container.exec_command(command)
    except (BootstrapError, KeyboardInterrupt, Exception) as exc:
        sys.exit(exit_code_for(exc))
