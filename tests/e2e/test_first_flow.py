"""docs/first-flow.md, run as written: every ``sh`` block of the page, in order, in a shell,
against the API double. Only the server's port and the image name are swapped in (the page
says localhost:4200 and prefect-agent:prod); a page that no longer works fails here."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import List

import pytest

from testbed.docker import ROOT

# the page's agent listens on the image's default health port (127.0.0.1:8080)
pytestmark = [pytest.mark.docker, pytest.mark.e2e, pytest.mark.xdist_group("port-8080")]

PAGE = ROOT / "docs" / "first-flow.md"
AGENT = "first-agent"
MARK = "@@ next step @@"


def shell_blocks(page: Path) -> List[str]:
    return re.findall(r"^```sh\n(.*?)^```", page.read_text(), flags=re.S | re.M)


def test_the_page_has_the_steps_it_promises() -> None:
    blocks = shell_blocks(PAGE)
    assert len(blocks) == 4
    assert "docker run --detach --name first-agent" in blocks[0]
    assert "prefect register" in blocks[1]
    assert "prefect run" in blocks[2]


def test_the_first_flow_runs_exactly_as_the_page_says(
    prefect_api, prod_image: str, docker_cli: str
) -> None:
    """One shell session, as a reader's terminal (step 1 exports PREFECT_API)."""
    port = prefect_api.url.rsplit(":", 1)[1].split("/")[0]
    steps = [f'echo "{MARK}"\n{block}' for block in shell_blocks(PAGE)]
    script = "\n".join(steps).replace("localhost:4200", f"localhost:{port}")
    script = script.replace("prefect-agent:prod", prod_image)
    shell = f'docker() {{ "{docker_cli}" "$@"; }}\n{script}'  # the engine's own client
    try:
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", shell],
            cwd=ROOT, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    finally:
        subprocess.run([docker_cli, "rm", "--force", AGENT], capture_output=True)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    outputs = result.stdout.split(MARK + "\n")[1:]
    assert len(outputs) == len(steps)
    assert "Hello SLAC: the first 4 squares add up to 30" in outputs[2]
    assert "Flow run succeeded!" in outputs[2]
    (flow_run,) = prefect_api.flow_runs()
    assert flow_run["state"] == "Success"
    assert [project["name"] for project in prefect_api.projects()] == ["first"]
