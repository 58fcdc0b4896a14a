"""The ``prefect-agent-bootstrap`` command's front (bootstrap.console): the image's entrypoint
in front of a command of its own skips the CLI; the bootstrap's own commands get the CLI."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bootstrap.console import COMMANDS, foreign_command


def test_the_command_names_are_the_clis() -> None:
    from bootstrap.cli import cli

    assert set(cli.commands) == COMMANDS


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["entrypoint", "--", "prefect", "execute", "flow-run"],
            ["prefect", "execute", "flow-run"],
        ),
        (["entrypoint", "python", "-c", "pass"], ["python", "-c", "pass"]),
        (["entrypoint", "--", "sh", "-c", "--help"], ["sh", "-c", "--help"]),
        (["entrypoint"], None),  # the default command: the bootstrap's run
        (["entrypoint", "--"], None),
        (["entrypoint", "--", "settings"], None),  # docker run IMAGE settings
        (["entrypoint", "--", "--help"], None),
        (["entrypoint", "--help"], None),
        (["entrypoint", "--", "/opt/prefect/bin/prefect-agent-bootstrap", "run"], None),
        (["run"], None),
        ([], None),
    ],
)
def test_which_commands_skip_the_cli(args, expected) -> None:
    assert foreign_command(args) == expected


def entrypoint(*command: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BOOTSTRAP_", "EXTRA_"))}
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "bootstrap", "entrypoint", "--", *command],
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def imported(stderr: str) -> set:
    return {line.rsplit("|", 1)[1].strip() for line in stderr.splitlines() if is_import(line)}


def is_import(line: str) -> bool:
    return line.startswith("import time:")


def test_a_command_of_its_own_runs_without_the_cli_settings_or_installers() -> None:
    result = entrypoint(sys.executable, "-c", "print('ran')")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ran\n"
    modules = imported(result.stderr)
    assert "bootstrap.container" in modules
    unloaded = {"bootstrap.cli", "click", "pydantic", "bootstrap.settings"}
    unloaded |= {"bootstrap.extras.transaction", "urllib.request"}
    assert not modules & unloaded, modules & unloaded


def test_the_bootstraps_own_command_gets_the_cli() -> None:
    result = entrypoint("settings", "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage: prefect-agent-bootstrap settings" in result.stdout
    assert "bootstrap.cli" in imported(result.stderr)


def test_a_command_that_cannot_run_is_one_logged_line_and_exit_1() -> None:
    result = entrypoint("/nonexistent/command")
    assert result.returncode == 1, result
    said = [line for line in result.stderr.splitlines() if not is_import(line)]
    errors = [line for line in said if "ERROR" in line]
    assert len(errors) == 1, said
    assert errors[0].endswith("cannot run '/nonexistent/command': No such file or directory")
    assert "Traceback" not in result.stderr
