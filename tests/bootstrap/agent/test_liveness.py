"""bootstrap.agent.liveness and .config: what the poll loop's record means (pure)."""

from __future__ import annotations

from dataclasses import replace

from bootstrap.agent.config import LauncherConfig, poll_intervals
from bootstrap.agent.liveness import Snapshot, liveness, outage, readiness

CONFIG = LauncherConfig(liveness_window=60, outage_limit=600, engine_url="unix:///s")
POLLING = Snapshot(
    started=0, registered=1, last_poll_ok=True, last_success=100, polls=50, engine_checked=True
)


def test_the_poll_ceiling_caps_prefects_back_off() -> None:
    stock = {0: 0.25, 1: 0.5, 2: 1.0, 3: 2.0, 4: 4.0, 5: 8.0, 6: 10.0}
    assert poll_intervals(stock, 1.0) == {0: 0.25, 1: 0.5, 2: 1.0, 3: 1.0, 4: 1.0, 5: 1.0, 6: 1.0}
    assert poll_intervals(stock, 10) == stock  # 10 s: Prefect's stock behaviour


def test_config_round_trips_through_the_environment() -> None:
    config = LauncherConfig(agent_type="local", metrics_port=9100, startup_seconds={"wait": 0.5})
    assert LauncherConfig.from_env({"PREFECT_AGENT_LAUNCHER": config.to_env()}) == config
    assert LauncherConfig.from_env({}) == LauncherConfig()  # started by hand: stock behaviour


def test_a_polling_agent_is_alive_and_ready() -> None:
    assert liveness(POLLING, 120, CONFIG).ok
    assert readiness(POLLING, 120, CONFIG).ok
    assert outage(POLLING, 120, CONFIG) is None


def test_no_successful_poll_within_the_window_is_not_alive() -> None:
    failing = replace(POLLING, last_poll_ok=False, last_failure=159, last_error="ConnectionError")
    assert liveness(failing, 159, CONFIG).ok  # a short outage: still alive ...
    assert not readiness(failing, 159, CONFIG).ok  # ... but not ready
    verdict = liveness(failing, 161, CONFIG)
    assert not verdict.ok
    assert "no poll for flow runs has succeeded for 61 s" in verdict.reason
    assert "ConnectionError" in verdict.reason


def test_a_poll_that_never_returns_is_stuck() -> None:
    stuck = replace(POLLING, poll_started=105)
    assert liveness(stuck, 150, CONFIG).ok
    verdict = liveness(stuck, 170, CONFIG)
    assert not verdict.ok
    assert "has not returned for 65 s" in verdict.reason


def test_a_lost_engine_is_not_alive_and_long_enough_stops_the_agent() -> None:
    lost = replace(POLLING, engine_failing_since=110, engine_error="ConnectionRefusedError")
    assert not liveness(lost, 120, CONFIG).ok
    assert "Docker engine" in liveness(lost, 120, CONFIG).reason
    assert outage(lost, 200, CONFIG) is None  # lost for 90 s: under the limit
    stop = outage(replace(lost, last_success=705), 711, CONFIG)
    assert stop is not None
    assert stop.exit_code == 5
    assert "Docker engine" in stop.reason


def test_an_api_outage_longer_than_the_limit_stops_the_agent() -> None:
    assert outage(POLLING, 700, CONFIG) is None
    stop = outage(POLLING, 701, CONFIG)
    assert stop is not None
    assert stop.exit_code == 3
    assert "has not answered a poll for 601 s" in stop.reason
    assert outage(POLLING, 10_000, replace(CONFIG, outage_limit=0)) is None  # 0: never


def test_before_registration_nothing_is_ready_and_nothing_stops() -> None:
    starting = Snapshot(started=0)
    assert not readiness(starting, 5, CONFIG).ok
    assert outage(starting, 10_000, CONFIG) is None
