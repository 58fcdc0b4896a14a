"""Waiting for the server: back-off, a server that comes up late, a clear failure."""

from __future__ import annotations

import threading
import time

import pytest

from bootstrap.api.client import ApiConfig, PrefectApi
from bootstrap.startup.step1_wait import wait_for_server
from bootstrap.util.errors import ServerUnavailableError
from bootstrap.util.log import configure_logging
from prefect_api_double import PrefectApiDouble
from testbed.net import free_port


def test_a_running_server_is_used_at_once(prefect_api: PrefectApiDouble) -> None:
    wait_for_server(PrefectApi(ApiConfig(prefect_api.url)), timeout=5)
    assert prefect_api.fields_called() == ["hello"]


def test_unreachable_server_fails_after_the_timeout_naming_url_and_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(ServerUnavailableError) as info:
        wait_for_server(PrefectApi(ApiConfig(url)), timeout=2)
    elapsed = time.monotonic() - started
    message = str(info.value)
    assert url in message
    assert "did not answer within 2 s" in message
    assert "Connection refused" in message
    assert "attempts" in message
    # The timeout bounds the wait: a sleep past it would start a fifth attempt at 3.75 s.
    assert elapsed < 3.25


def test_a_server_that_comes_up_during_the_wait_is_used() -> None:
    double = PrefectApiDouble(port=free_port())
    starter = threading.Timer(1.5, double.start)
    starter.start()
    try:
        wait_for_server(PrefectApi(ApiConfig(double.url)), timeout=20)
        assert double.fields_called() == ["hello"]
    finally:
        starter.cancel()
        double.stop()


def test_server_errors_and_garbage_are_retried(prefect_api: PrefectApiDouble) -> None:
    prefect_api.fail_next(2, status=502)
    prefect_api.garbage_next(1)
    wait_for_server(PrefectApi(ApiConfig(prefect_api.url)), timeout=20)
    assert prefect_api.pending_faults == 0
    assert len(prefect_api.requests) == 4  # 2 x 502, 1 x garbage, then the answer


def test_each_attempt_is_logged(capsys: pytest.CaptureFixture) -> None:
    configure_logging("INFO")
    with pytest.raises(ServerUnavailableError):
        # 3 s: attempt 2 is logged only if a third would start before the deadline
        wait_for_server(PrefectApi(ApiConfig(f"http://127.0.0.1:{free_port()}")), timeout=3)
    logged = capsys.readouterr().err
    assert "Waiting up to 3 s" in logged
    assert "not ready (attempt 1: [Errno 111] Connection refused); retrying in 0.25 s" in logged
    assert "(attempt 2:" in logged
