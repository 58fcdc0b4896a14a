"""bootstrap.startup: the sequence's own decisions (the steps have their own tests)."""

from __future__ import annotations

import logging
from typing import Iterator, List

import pytest

from bootstrap.api.connect import connect
from bootstrap.util.log import logger


@pytest.fixture
def warnings() -> Iterator[List[str]]:
    lines: List[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


@pytest.mark.parametrize(
    ("url", "warned"),
    [
        ("http://prefect.example.org:4200/graphql", True),
        ("https://prefect.example.org/graphql", False),
        ("http://127.0.0.1:4200", False),
        ("http://localhost:4200", False),
    ],
)
def test_an_api_key_over_plain_http_to_another_host_is_warned_about(warnings, url, warned):
    connect({"PREFECT__CLOUD__API": url, "PREFECT__CLOUD__API_KEY": "pa-key-123"})
    assert any("sent in clear (http://)" in line for line in warnings) is warned
    assert not any("pa-key-123" in line for line in warnings)


def test_no_key_no_warning(warnings) -> None:
    connect({"PREFECT__CLOUD__API": "http://prefect.example.org:4200/graphql"})
    assert warnings == []
