"""Host tools the tests drive (make tools installs them): a missing one skips the test on a
workstation and fails it under CI=true, where a skip would count a test as run that was not."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def missing_tool(message: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)
