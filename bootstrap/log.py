"""Logging for the bootstrap: Prefect-like lines on stderr, with secrets masked."""

from __future__ import annotations

import logging
import sys
from typing import Iterable, Set

MASK = "********"
_secrets: Set[str] = set()

logger = logging.getLogger("bootstrap")


def register_secrets(values: Iterable[str]) -> None:
    """Values that are replaced by a mask wherever they would appear in a log line."""
    _secrets.update(value for value in values if value and len(value) >= 3)


def mask(text: str) -> str:
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


class _MaskingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return mask(super().format(record))


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    formatter = _MaskingFormatter("[%(asctime)s] %(levelname)s - bootstrap | %(message)s")
    formatter.default_msec_format = "%s.%03d"
    handler.setFormatter(formatter)
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
