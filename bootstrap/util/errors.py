"""Errors the bootstrap reports to the operator, each with its own exit code.

The CLI prints ``error: <message>`` and exits with ``exit_code``; no traceback, because
every message already says what was wrong and what to change.
"""


class BootstrapError(Exception):
    """A problem the operator can fix; the message says how."""

    exit_code = 1


class SettingsError(BootstrapError):
    """A setting is missing, malformed or out of range."""

    exit_code = 2


class ServerUnavailableError(BootstrapError):
    """The Prefect Server did not answer usefully within the wait timeout."""

    exit_code = 3


class ApiError(BootstrapError):
    """The Prefect API answered, but with an error or with something that is not an answer."""

    exit_code = 4


class PreflightError(BootstrapError):
    """The agent cannot run here (no Docker socket, no Kubernetes configuration, ...)."""

    exit_code = 5


class ExtrasError(BootstrapError):
    """Installing EXTRA_CONDA_PACKAGES / EXTRA_PIP_PACKAGES failed; nothing was changed."""

    exit_code = 6
