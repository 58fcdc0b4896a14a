"""The image's core in the extras step: derived from what is installed, held while resolving,
refused when it would change, checked after installing (real uv, real wheels, a scratch
environment with a stand-in core: lume-base 0.3.3 needing pydantic<2 and click>=8)."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, List

import pytest

from bootstrap.extras import install_extras, journal, proc
from bootstrap.extras.core import core_of
from bootstrap.extras.environment import inspect_env
from bootstrap.util.errors import ExtrasError
from bootstrap.util.log import logger
from testbed.packages import PackageServer, build_core_repo

VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PackageServer]:
    with PackageServer(build_core_repo(tmp_path_factory.mktemp("core-repo"))) as server:
        yield server


@pytest.fixture
def env(tmp_path: Path, repo: PackageServer) -> Path:
    """A scratch environment holding the stand-in core."""
    path = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    core = ["lume-base==0.3.3", "pydantic==1.10.27", "click==8.1.8"]
    subprocess.run(
        [VENV_BIN / "uv", "pip", "install", "--quiet", "--python", path / "bin" / "python",
         "--index-url", f"{repo.url}/simple", *core],
        check=True,
    )  # fmt: skip
    return path


@pytest.fixture
def environ(tmp_path: Path, repo: PackageServer) -> Dict[str, str]:
    repo.delay.clear()
    return {
        "PATH": f"{VENV_BIN}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "PIP_INDEX_URL": f"{repo.url}/simple",
    }


@pytest.fixture
def log() -> Iterator[List[str]]:
    lines: List[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield lines
    logger.removeHandler(handler)


def versions(env: Path) -> Dict[str, str]:
    target = inspect_env(env)
    return {name: version for name, (version, _) in target.distributions.items()}


def test_the_core_is_what_the_roots_need_at_the_installed_versions(env) -> None:
    core = core_of(inspect_env(env))
    assert core.roots == ["lume-base"]
    assert core.pins == {"lume-base": "0.3.3", "pydantic": "1.10.27", "click": "8.1.8",
                         "toolz": "0.12.0"}  # fmt: skip
    assert core.needed_by["pydantic"] == ["lume-base 0.3.3 needs pydantic<2"]
    assert "pydantic==1.10.27\n" in core.constraints()


@pytest.mark.parametrize(
    ("request_", "change"),
    [
        ("pydantic==2.99.0", "pydantic 1.10.27 would become 2.99.0"),
        ("needs-pydantic2", "pydantic 1.10.27 would become 2.99.0"),
        ("old-click-user", "click 8.1.8 would become 7.0"),
    ],
)
def test_a_change_to_the_core_is_refused_before_anything_changes(
    env, environ, request_, change
) -> None:
    environ["EXTRA_PIP_PACKAGES"] = request_
    before = journal.scan(env)
    with pytest.raises(ExtrasError) as info:
        install_extras(environ, prefix=env)
    message = str(info.value)
    assert message.startswith(f"EXTRA_PIP_PACKAGES: {request_} cannot be installed without")
    assert change in message
    assert "lume-base 0.3.3 needs" in message  # who needs the core as it is
    assert "nothing was installed" in message
    assert info.value.exit_code == 6
    assert journal.scan(env) == before


def test_the_installers_explanation_names_who_wants_the_change(env, environ) -> None:
    environ["EXTRA_PIP_PACKAGES"] = "needs-pydantic2"
    with pytest.raises(ExtrasError, match=r"needs-pydantic2 depends? on pydantic>=2"):
        install_extras(environ, prefix=env)


def test_a_request_that_fits_the_core_is_steered_to_it(env, environ) -> None:
    environ["EXTRA_PIP_PACKAGES"] = "steerable"  # 2.0 needs pydantic 2; 1.0 needs nothing
    install_extras(environ, prefix=env)
    installed = versions(env)
    assert installed["steerable"] == "1.0"
    assert installed["pydantic"] == "1.10.27"


def test_a_package_that_breaks_the_core_is_rolled_back(env, environ) -> None:
    environ["EXTRA_PIP_PACKAGES"] = "breaker"
    before = journal.scan(env)
    with pytest.raises(ExtrasError) as info:
        install_extras(environ, prefix=env)
    message = str(info.value)
    assert "the extra packages broke the environment" in message
    assert "the core no longer imports (lume.base)" in message
    assert "the environment was rolled back" in message
    assert journal.scan(env) == before


def test_allowing_core_changes_is_loud_and_still_checked(env, environ, log) -> None:
    environ.update(EXTRA_PIP_PACKAGES="pydantic==2.99.0", EXTRA_ALLOW_CORE_CHANGES="1")
    before = journal.scan(env)
    with pytest.raises(ExtrasError, match=r"lume-base.*requires.*pydantic<2"):
        install_extras(environ, prefix=env)  # uv pip check: lume-base needs pydantic<2
    assert any("EXTRA_ALLOW_CORE_CHANGES is set" in line for line in log)
    assert journal.scan(env) == before


def test_a_conda_package_needing_another_core_version_is_refused(env, environ, repo) -> None:
    environ["EXTRA_CONDA_PACKAGES"] = f"-c {repo.url}/channel needspydantic2"
    before = journal.scan(env)
    with pytest.raises(ExtrasError) as info:
        install_extras(environ, prefix=env)
    message = str(info.value)
    assert message.startswith("EXTRA_CONDA_PACKAGES: needspydantic2 cannot be installed without")
    assert "pydantic 1.10.27 would become another version" in message
    assert journal.scan(env) == before


def test_a_long_install_says_what_it_is_doing(env, environ, repo, log, monkeypatch) -> None:
    monkeypatch.setattr(proc, "PROGRESS_SECONDS", 0.5)
    repo.delay["steerable-1.0-py3-none-any.whl"] = 3.0
    environ["EXTRA_PIP_PACKAGES"] = "steerable"
    install_extras(environ, prefix=env)
    progress = [line for line in log if "still running after" in line]
    assert len(progress) >= 3, log
    assert progress[0].startswith("Installing the pip step (uv): still running after")
    assert "MB read so far" in progress[0]


def record_optional_imports(env: Path, *names: str) -> None:
    """What the image build writes: the names the core imports when they are there."""
    record = env / ".prefect-agent" / "optional-imports.txt"
    record.parent.mkdir(exist_ok=True)
    record.write_text("".join(f"{name}\n" for name in names))


def checked_line(log: List[str]) -> str:
    checked = [line for line in log if line.startswith("Checked the environment")]
    assert checked, log
    return checked[0]


def test_a_plain_new_package_is_checked_without_importing_the_core(env, environ, log) -> None:
    """Only new distributions, no .pth or shadowed names: uv pip check, no import check (the
    import check of a fresh interpreter is most of the check's cost). The breaker above,
    with a .pth, gets the full check."""
    record_optional_imports(env, "simplejson")
    environ["EXTRA_PIP_PACKAGES"] = "steerable==1.0"
    install_extras(environ, prefix=env)
    assert "only new distributions that cannot change the core's imports" in checked_line(log)


def test_a_package_the_core_would_import_gets_the_full_check(env, environ, log) -> None:
    """requests imports simplejson if it is there: a new package of such a name changes
    what the core does (steerable stands in for it here)."""
    record_optional_imports(env, "simplejson", "steerable")
    environ["EXTRA_PIP_PACKAGES"] = "steerable==1.0"
    install_extras(environ, prefix=env)
    line = checked_line(log)
    assert "consistent, the core imports (" in line  # it was imported
    assert "the core imports 'steerable' when it is there" in line  # and why
