"""A flow following lume-services' conventions: Module storage naming this module, results
kept in the API (PrefectResult, read back by the scheduler), LUME settings from ``LUME_*``
variables, and a file saved under the mounted filesystem's alias (as its SaveFile task)."""

import hashlib
import os
from pathlib import Path

import prefect
from prefect import Flow, Parameter, task
from prefect.engine.results import PrefectResult
from prefect.storage import Module


@task
def lume_settings() -> dict:
    """What lume-services' configure task reads; secret values only as their SHA-256."""
    return {
        name: (hashlib.sha256(value.encode()).hexdigest() if "PASSWORD" in name else value)
        for name, value in os.environ.items()
        if name.startswith("LUME_")
    }


@task
def project_name() -> str:
    return prefect.context.get("project_name", "")


@task
def save_text(text: str, filename: str) -> str:
    path = Path(os.environ["LUME_MOUNTED_FILESYSTEM__MOUNT_ALIAS"]) / filename
    path.write_text(text)
    return str(path)


with Flow("lume-report", storage=Module(__name__), result=PrefectResult()) as flow:
    text = Parameter("text")
    filename = Parameter("filename")
    settings = lume_settings()
    project = project_name()
    saved = save_text(text, filename)
