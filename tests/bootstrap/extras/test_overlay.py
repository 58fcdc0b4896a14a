"""bootstrap.extras.overlay: extras beside a read-only environment (real uv, real wheels;
the environment's read-only state is simulated: these tests run as root, whom permissions
do not stop; tests/image/test_runtimes.py runs it on a real read-only root)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator

import pytest

from bootstrap.extras import install_extras, journal, overlay
from bootstrap.util.errors import ExtrasError
from testbed.packages import PackageServer, build_core_repo, build_repo, make_simple_index

VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PackageServer]:
    root = tmp_path_factory.mktemp("repo")
    build_repo(root / "plain")
    build_core_repo(root / "core")
    wheels = [*(root / "plain" / "wheels").glob("*.whl"), *(root / "core" / "wheels").glob("*.whl")]
    make_simple_index(root, wheels)
    with PackageServer(root) as server:
        yield server


@pytest.fixture
def env(tmp_path: Path, repo: PackageServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    subprocess.run(
        [VENV_BIN / "uv", "pip", "install", "--quiet", "--python", path / "bin" / "python",
         "--index-url", f"{repo.url}/simple", "lume-base==0.3.3", "tinydep==0.1.0"],
        check=True,
    )  # fmt: skip
    monkeypatch.setattr(overlay, "writable", lambda prefix, target: False)
    return path


@pytest.fixture
def environ(tmp_path: Path, repo: PackageServer) -> Dict[str, str]:
    (tmp_path / "overlay").mkdir()
    return {
        "PATH": f"{VENV_BIN}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "PIP_INDEX_URL": f"{repo.url}/simple",
        "PREFECT_EXTRAS_DIR": str(tmp_path / "overlay"),
    }


def python_with(env: Path, found: overlay.Overlay, code: str) -> str:
    environment = found.environment({"PATH": "/usr/bin:/bin"})
    return subprocess.run(
        [env / "bin" / "python", "-c", code], env=environment, capture_output=True, text=True,
        check=True,
    ).stdout.strip()  # fmt: skip


def test_new_packages_go_to_the_overlay_and_the_environment_stays_as_it_is(env, environ):
    environ["EXTRA_PIP_PACKAGES"] = "tinypkg"  # needs tinydep, which is installed (0.1.0)
    before = journal.scan(env)
    found = install_extras(environ, prefix=env)
    assert found is not None
    assert found.site == Path(environ["PREFECT_EXTRAS_DIR"]) / "site"
    assert journal.scan(env) == before  # not a byte changed in the environment
    packages = {p.name for p in found.site.iterdir() if not p.name.endswith("dist-info")}
    assert packages - {".lock"} == {"tinypkg"}  # tinydep is used from the environment
    code = "import tinypkg, tinydep; print(tinypkg.VERSION, tinydep.VERSION)"
    assert python_with(env, found, code) == "0.1.0 0.1.0"
    again = install_extras(environ, prefix=env)  # the same request: nothing to do
    assert again == found


def test_what_would_change_the_environment_is_refused(env, environ) -> None:
    environ["EXTRA_PIP_PACKAGES"] = "tinydep==0.2.0"
    with pytest.raises(ExtrasError, match="what is installed there cannot change"):
        install_extras(environ, prefix=env)
    assert not (Path(environ["PREFECT_EXTRAS_DIR"]) / "site").exists()


def test_a_package_that_breaks_the_core_never_reaches_the_overlay(env, environ) -> None:
    environ["EXTRA_PIP_PACKAGES"] = "shadow-toolz"  # its toolz would come first: broken
    with pytest.raises(ExtrasError, match=r"the core no longer imports with them \(lume\.base\)"):
        install_extras(environ, prefix=env)
    assert list(Path(environ["PREFECT_EXTRAS_DIR"]).iterdir()) == []  # staging removed too


def test_conda_packages_and_an_unwritable_overlay_say_what_to_do(env, environ) -> None:
    environ["EXTRA_CONDA_PACKAGES"] = "tinyconda"
    with pytest.raises(ExtrasError, match="start the container without --read-only"):
        install_extras(environ, prefix=env)
    del environ["EXTRA_CONDA_PACKAGES"]
    environ.update(EXTRA_PIP_PACKAGES="tinypkg", PREFECT_EXTRAS_DIR="/nonexistent/extras")
    with pytest.raises(
        ExtrasError,
        match=r"mount a writable directory there \(docker run --tmpfs /nonexistent:exec",
    ):
        install_extras(environ, prefix=env)
