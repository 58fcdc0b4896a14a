"""Logging for the bootstrap and the agent: Prefect-like lines or JSON objects, one per line,
with secrets masked."""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import Iterable, Mapping, Optional, Set

from bootstrap.util.secrets import environment_secrets

MASK = "********"
LOG_LEVEL_ENV = "BOOTSTRAP_LOG_LEVEL"
LOG_FORMAT_ENV = "BOOTSTRAP_LOG_FORMAT"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
TEXT_FORMAT = "[%(asctime)s] %(levelname)s - bootstrap | %(message)s"
_secrets: Set[str] = set()
# Prefect's agents name the flow run in their messages ("Deploying flow run <id> ...").
_FLOW_RUN = re.compile(
    r"flow run ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})", re.IGNORECASE
)

logger = logging.getLogger("bootstrap")


def register_secrets(values: Iterable[str]) -> None:
    """Values that are replaced by a mask wherever they would appear in a log line."""
    _secrets.update(value for value in values if value and len(value) >= 3)


def mask(text: str) -> str:
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


class MaskingFormatter(logging.Formatter):
    def __init__(self, fmt: Optional[str] = None, datefmt: Optional[str] = None) -> None:
        super().__init__(fmt, datefmt)
        self.default_msec_format = "%s.%03d"

    def format(self, record: logging.LogRecord) -> str:
        return mask(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (ISO 8601, UTC), level, logger, message, and
    flow_run_id when the record is about one."""

    def __init__(self) -> None:
        super().__init__()
        from pythonjsonlogger.json import JsonFormatter as _Json

        self._json = _Json(
            "{asctime}{levelname}{name}{message}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
        self._json.formatTime = self._iso_time  # type: ignore[method-assign]

    @staticmethod
    def _iso_time(record: logging.LogRecord, datefmt: Optional[str] = None) -> str:
        seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{seconds}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        if not getattr(record, "flow_run_id", None):
            found = _FLOW_RUN.search(record.getMessage())
            if found:
                record.flow_run_id = found.group(1)
        return mask(self._json.format(record))


def formatter(log_format: str = "text", fmt: str = TEXT_FORMAT) -> logging.Formatter:
    if log_format == "json":
        try:
            return JsonFormatter()
        except ImportError:  # the root phase runs without site-packages: text it is
            pass
    return MaskingFormatter(fmt)


def environ_log_level(environ: Mapping[str, str]) -> str:
    """BOOTSTRAP_LOG_LEVEL, or INFO: a bad value is the settings' to report, not the log's."""
    level = environ.get(LOG_LEVEL_ENV, "INFO").upper()
    return level if level in LOG_LEVELS else "INFO"


def environ_log_format(environ: Mapping[str, str]) -> str:
    """BOOTSTRAP_LOG_FORMAT (text or json), or text."""
    log_format = environ.get(LOG_FORMAT_ENV, "text").lower()
    return log_format if log_format in ("text", "json") else "text"


def configure_logging_from(environ: Mapping[str, str]) -> None:
    """How a process of the image logs before, or without, the settings: the environment's
    secrets masked (before the first line), at BOOTSTRAP_LOG_LEVEL in BOOTSTRAP_LOG_FORMAT."""
    register_secrets(environment_secrets(environ))
    configure_logging(environ_log_level(environ), environ_log_format(environ))


def configure_logging(level: str = "INFO", log_format: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format))
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
