"""The launcher's process: hooks in, health server and checks up, then prefect's own CLI."""

from __future__ import annotations

import contextlib
import io
import logging
import os
from typing import List, Sequence

import click

from bootstrap.agent.config import LauncherConfig
from bootstrap.agent.liveness import API_OUTAGE_EXIT, ENGINE_OUTAGE_EXIT, AgentHealth
from bootstrap.util.log import configure_logging, formatter, logger, register_secrets
from bootstrap.util.secrets import environment_secrets


def _format_prefect_logs(agent_class, log_format: str) -> None:
    """Prefect's loggers in the same format as the bootstrap's, secrets masked."""

    def reformat(log: logging.Logger) -> None:
        for handler in log.handlers:
            if isinstance(handler, logging.StreamHandler) and handler.formatter is not None:
                fmt = getattr(handler.formatter, "_fmt", None) or "%(message)s"
                handler.setFormatter(formatter(log_format, fmt))

    reformat(logging.getLogger("prefect"))
    original = agent_class._get_logger

    def _get_logger(self):
        log = original(self)
        reformat(log)
        return log

    agent_class._get_logger = _get_logger
    if log_format == "json":  # the start-up banner is printed, not logged: not a JSON line
        banner = agent_class._show_startup_display

        def _show_startup_display(self):
            with contextlib.redirect_stdout(io.StringIO()):
                banner(self)

        agent_class._show_startup_display = _show_startup_display


def main(argv: Sequence[str]) -> int:
    config = LauncherConfig.from_env(os.environ)
    configure_logging(config.log_level, config.log_format)
    register_secrets(environment_secrets(os.environ))
    args = list(argv[1:] if argv and argv[0] == "agent" else argv)

    from prefect.agent.agent import Agent  # 0.5 s: what `prefect agent` imports too

    from bootstrap.agent import hooks
    from bootstrap.agent.metrics import Metrics
    from bootstrap.agent.policy import Policy
    from bootstrap.agent.watchdog import EngineCheck, Watchdog

    health = AgentHealth()
    metrics = Metrics(config.agent_type, config.startup_seconds)
    hooks.install(Agent, config, health, metrics)
    if config.policy is not None:
        hooks.install_policy(config.agent_type, Policy.from_dict(config.policy))
    _format_prefect_logs(Agent, config.log_format)
    if config.metrics_port and not _serve_metrics(metrics, config):
        return ENGINE_OUTAGE_EXIT
    watchdog = Watchdog(config, health, metrics)
    watchdog.start()
    engine_check = EngineCheck(config.engine_url, health, metrics) if config.engine_url else None
    if engine_check is not None:
        engine_check.start()
    try:
        return _run_agent(args, watchdog, health)
    finally:
        watchdog.stopped.set()
        if engine_check is not None:
            engine_check.stopped.set()


def _serve_metrics(metrics, config: LauncherConfig) -> bool:
    try:
        metrics.serve(config.metrics_port, config.metrics_host)
    except OSError as exc:
        logger.error(
            "cannot serve metrics on port %d (%s): another agent on this host? Give each "
            "one its own BOOTSTRAP_METRICS_PORT",
            config.metrics_port,
            exc.strerror,
        )
        return False
    return True


def _run_agent(args: List[str], watchdog, health: AgentHealth) -> int:
    """prefect's ``agent <type> start`` in this process; its exit code, or the watchdog's."""
    from prefect.cli.agent import agent as agent_cli

    from bootstrap.agent.health_server import AddressInUse

    try:
        agent_cli.main(args=args, prog_name="prefect agent", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:  # prefect's CLI refused an option
        exc.show()
        return exc.exit_code
    except AddressInUse as exc:
        logger.error("%s", exc)
        return ENGINE_OUTAGE_EXIT
    except KeyboardInterrupt:  # a stop signal before prefect's own handler was in place
        pass
    except Exception as exc:
        if watchdog.stop is not None:
            return watchdog.stop.exit_code
        if health.snapshot().registered is None:
            logger.error("the agent could not register with the Prefect API: %s", exc)
            return API_OUTAGE_EXIT
        logger.exception("the agent stopped on an unexpected error")
        return 1
    if watchdog.stop is not None:
        return watchdog.stop.exit_code
    return 0
