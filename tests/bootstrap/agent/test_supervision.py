"""bootstrap.agent.supervision: what the agent decides once a flow-run container exited."""

from __future__ import annotations

import datetime

import pytest

from bootstrap.agent.supervision import (
    ContainerExit,
    container_name,
    exit_reason,
    expired,
    judge,
    last_words,
    parse_docker_time,
    taken,
)

RUN = "0c7e6c2e-1111-4222-8333-944455556666"


def exited(code: int, **kw) -> ContainerExit:
    return ContainerExit(RUN, "c0ffee", container_name(RUN), code, **kw)


def test_the_reason_names_the_exit_the_oom_kill_and_the_last_error() -> None:
    assert exit_reason(exited(137)) == (
        f"flow-run container prefect-flow-run-{RUN} exited 137: killed (SIGKILL)"
    )
    assert "exited 137 (OOMKilled): out of memory" in exit_reason(exited(137, oom_killed=True))
    output = [
        "Installing extra packages ...",
        "EXTRA_PIP_PACKAGES: uv failed to install no-such-package: not found",
        "(nothing was installed)",
    ]
    reason = exit_reason(exited(6, output=output))
    assert reason.endswith(
        "exited 6: installing the extra packages failed; EXTRA_PIP_PACKAGES: uv failed to "
        "install no-such-package: not found"
    )
    assert exit_reason(exited(42)).endswith("exited 42")
    assert exit_reason(exited(128, error="OCI runtime create failed")).endswith(
        "; OCI runtime create failed"
    )


def test_last_words_prefers_an_error_line() -> None:
    assert last_words(["a", "ValueError: boom", "b", ""]) == "ValueError: boom"
    assert last_words(["a", "b", "  "]) == "b"
    assert last_words([]) == ""
    assert len(last_words(["x" * 5000])) == 500


@pytest.mark.parametrize(
    ("code", "state", "fails", "removed"),
    [
        (137, "Running", True, False),  # died mid-run: Failed, kept for diagnosis
        (6, "Submitted", True, False),  # died before the flow runner: Failed, kept
        (0, "Success", False, True),  # the normal end: nothing to do, removed
        (0, "Running", False, True),  # a task retries later: prefect deploys the run again
        (1, "Failed", False, False),  # the flow failed and said so: kept
        (1, "Cancelled", False, False),
        (0, None, False, True),  # the run was deleted
        (137, None, False, False),
    ],
)
def test_judge(code, state, fails, removed) -> None:
    verdict = judge(exited(code), state)
    assert (verdict.fail_message is not None) is fails
    assert verdict.remove is removed


def test_a_run_another_agent_took_since_the_poll_is_not_deployed() -> None:
    assert taken("Scheduled", live_container=False) is None
    assert taken("Running", live_container=False) is None  # a task retrying: deploy again
    assert taken("Running", live_container=True) == "its container is running"
    assert taken("Submitted", live_container=False) == "it is Submitted already"
    assert taken("Success", live_container=False) == "it is Success already"
    assert taken(None, live_container=False) == "it no longer exists"


def test_retention() -> None:
    stopped = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    later = stopped + datetime.timedelta(hours=1)
    assert expired(stopped, later, 3600)
    assert not expired(stopped, later, 3601)
    assert not expired(None, later, 0)  # never stopped


def test_docker_times() -> None:
    parsed = parse_docker_time("2026-12-04T21:40:12.123456789Z")
    assert parsed == datetime.datetime(2026, 12, 4, 21, 40, 12, tzinfo=datetime.timezone.utc)
    assert parse_docker_time("0001-01-01T00:00:00Z") is None
    assert parse_docker_time("") is None
