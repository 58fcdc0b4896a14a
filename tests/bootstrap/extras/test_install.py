"""install_extras with the real installers (uv, py-rattler) into scratch environments.

Packages are built by the tests (tests/fixtures/extras.py) and served on 127.0.0.1: a PEP 503
index with PEP 658 metadata (so a dry run reads metadata and only an install downloads a
wheel), a --find-links directory and a conda channel. Every "unchanged" assertion compares a
full lstat listing of the environment before and after.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterator, List

import pytest

from bootstrap.extras import fingerprint, install_extras, journal, proc
from bootstrap.util.errors import ExtrasError
from bootstrap.util.log import logger, mask
from testbed.packages import PackageServer, build_repo, make_tls, make_wheel

ROOT = Path(__file__).resolve().parents[3]
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PackageServer]:
    """Wheels, index, channel: see testbed.packages.build_repo."""
    root = build_repo(tmp_path_factory.mktemp("repo"))
    with PackageServer(root) as server:
        yield server


def new_env(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    return path


@pytest.fixture
def env(tmp_path: Path) -> Path:
    return new_env(tmp_path / "env")


@pytest.fixture
def environ(tmp_path: Path, repo: PackageServer) -> Dict[str, str]:
    """What the container would have: PATH with uv, the cache, no extras yet."""
    cache = tmp_path / "cache"
    repo.delay.clear()
    repo.clear()
    return {
        "PATH": f"{VENV_BIN}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "XDG_CACHE_HOME": str(cache),
        "CONDA_PKGS_DIRS": str(cache / "conda" / "pkgs"),
    }


@pytest.fixture
def log() -> Iterator[List[str]]:
    lines: List[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield lines
    logger.removeHandler(handler)
    logger.setLevel(level)


def run_python(env: Path, code: str) -> str:
    return subprocess.run(
        [str(env / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


def extras(repo: PackageServer, conda: str = "", pip: str = "") -> Dict[str, str]:
    values = {}
    if conda:
        values["EXTRA_CONDA_PACKAGES"] = f"-c {repo.url}/channel {conda}"
    if pip:
        values["EXTRA_PIP_PACKAGES"] = f"--index-url {repo.url}/simple {pip}"
    return values


# Success, skip, cache -------------------------------------------------------------------------


def test_installs_conda_then_pip_and_skips_when_unchanged(env, environ, repo, log):
    environ.update(extras(repo, conda="tinyconda", pip="tinypkg"))
    install_extras(environ, prefix=env)
    assert run_python(env, "import tinyconda, tinypkg, tinydep; print(tinyconda.FROM)") == "conda"
    assert (env / "conda-meta" / "tinyconda-0.1.0-py_0.json").is_file()
    assert any("Conda plan by rattler" in line and "tinyconda 0.1.0" in line for line in log)
    assert any("Pip plan by uv" in line and "tinypkg 0.1.0" in line for line in log)
    assert any(line.startswith("Extra packages installed in") for line in log)
    assert sorted(repo.downloads()) == [
        "/channel/noarch/tinyconda-0.1.0-py_0.tar.bz2",
        "/files/tinydep-0.2.0-py3-none-any.whl",
        "/files/tinypkg-0.1.0-py3-none-any.whl",
    ]
    assert fingerprint.read(env)

    # Same extras again: the fingerprint matches, no installer runs, nothing is fetched.
    repo.clear()
    log.clear()
    before = journal.scan(env)
    install_extras(environ, prefix=env)
    assert repo.requests == []
    assert [line for line in log if "installers skipped" in line]
    assert journal.scan(env) == before


def test_a_fresh_environment_with_a_warm_cache_downloads_nothing(tmp_path, environ, repo, log):
    environ.update(extras(repo, conda="tinyconda", pip="tinypkg"))
    install_extras(environ, prefix=new_env(tmp_path / "first"))
    assert repo.downloads()
    repo.clear()
    second = new_env(tmp_path / "second")
    install_extras(environ, prefix=second)
    assert repo.downloads() == []  # index pages and repodata revalidation only
    assert run_python(second, "import tinyconda, tinypkg; print('ok')") == "ok"


def test_already_satisfied_requests_change_nothing(env, environ, repo, log):
    environ.update(extras(repo, pip="tinypkg"))
    install_extras(environ, prefix=env)
    fingerprint.forget(env)  # e.g. installed by other means
    before = journal.scan(env)
    log.clear()
    install_extras(environ, prefix=env)
    assert "Extra packages already satisfied: nothing to install" in log
    after = journal.scan(env)
    assert after == before
    assert fingerprint.read(env)


def test_find_links_and_pip_variables(env, environ, repo):
    environ["EXTRA_PIP_PACKAGES"] = "tinypkg"
    environ["PIP_NO_INDEX"] = "1"
    environ["PIP_FIND_LINKS"] = f"{repo.url}/wheels/"
    install_extras(environ, prefix=env)
    assert run_python(env, "import tinypkg; print(tinypkg.VERSION)") == "0.1.0"


def test_a_conda_dependency_installed_by_pip_counts_as_present(env, environ, repo):
    """needsnumpy needs numpy, which only pip installed (as a stand-in here, 'numpy' 1.99)."""
    make_wheel(Path(environ["HOME"]) / "local", "numpy", "1.99")
    environ["EXTRA_PIP_PACKAGES"] = f"--no-index -f {environ['HOME']}/local numpy"
    install_extras(environ, prefix=env)
    environ["EXTRA_CONDA_PACKAGES"] = f"-c {repo.url}/channel needsnumpy"
    install_extras(environ, prefix=env)
    assert run_python(env, "import needsnumpy, numpy; print(numpy.VERSION)") == "1.99"
    assert [path.name for path in (env / "conda-meta").glob("*.json")] == [
        "needsnumpy-0.1.0-py_0.json"
    ]


# Failures leave the environment as it was ---------------------------------------------------


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"pip": "tinypgk"}, ["uv cannot install", "tinypgk was not found"]),
        ({"pip": "tinypkg>=5"}, ["uv cannot install", "only tinypkg==0.1.0 is available"]),
        (
            {"conda": "tinycondaa"},
            ["rattler cannot install", "No candidates were found for tinycondaa"],
        ),
        ({"conda": "tinyconda>=2"}, ["rattler cannot install", "for tinyconda >=2"]),
        ({"conda": "needsnumpy"}, ["rattler cannot install", "needsnumpy", "numpy >=1"]),
    ],
    ids=[
        "pip-misspelt",
        "pip-unsatisfiable",
        "conda-misspelt",
        "conda-unsatisfiable",
        "conda-missing-dependency",
    ],
)
def test_a_bad_spec_fails_before_anything_changes(env, environ, repo, variables, expected):
    # The good half of the request would succeed: the bad half must stop it.
    good = {"conda": "tinyconda", "pip": "tinypkg"}
    request = {
        key: f"{good[key]} {variables[key]}" if key in variables else good[key] for key in good
    }
    environ.update(extras(repo, **request))
    before = journal.scan(env)
    with pytest.raises(ExtrasError) as info:
        install_extras(environ, prefix=env)
    message = str(info.value)
    for fragment in expected:
        assert fragment in message
    assert info.value.exit_code == 6
    assert journal.scan(env) == before
    assert repo.downloads() == []  # planning reads metadata only


def test_shell_syntax_is_never_run(env, environ, tmp_path):
    marker = tmp_path / "pwned"
    environ["EXTRA_PIP_PACKAGES"] = f"numpy; touch {marker}"
    with pytest.raises(ExtrasError, match=r"'numpy;' is not a valid requirement"):
        install_extras(environ, prefix=env)
    environ["EXTRA_PIP_PACKAGES"] = f"tinypkg $(touch {marker})"
    with pytest.raises(ExtrasError, match="not a valid requirement"):
        install_extras(environ, prefix=env)
    assert not marker.exists()


def test_pip_failure_after_the_conda_step_rolls_both_back(env, environ, repo, log):
    environ.update(extras(repo, conda="tinyconda", pip="tinypkg badpkg"))
    before = journal.scan(env)
    with pytest.raises(ExtrasError) as info:
        install_extras(environ, prefix=env)
    message = str(info.value)
    assert "uv failed to install tinypkg badpkg" in message
    assert "Unsupported wheel major version" in message
    assert "the environment was rolled back (removed" in message
    assert "Installed conda packages with rattler" in " ".join(log)  # it had succeeded
    assert journal.scan(env) == before
    assert not journal.pending(env)
    assert fingerprint.read(env) is None


def test_a_replaced_distribution_is_restored(env, environ, repo):
    environ.update(extras(repo, pip="tinydep==0.1.0"))
    install_extras(environ, prefix=env)
    before = journal.scan(env)
    environ.update(extras(repo, pip="tinydep==0.2.0 badpkg"))
    with pytest.raises(ExtrasError, match="rolled back"):
        install_extras(environ, prefix=env)
    assert run_python(env, "import tinydep; print(tinydep.VERSION)") == "0.1.0"
    after = journal.scan(env)
    assert after == before


def test_credentials_in_index_urls_are_masked(env, environ, repo):
    url = repo.url.replace("http://", "http://bob:s3cr3t-pw@")
    environ["EXTRA_PIP_PACKAGES"] = f"--index-url {url}/simple tinypgk"
    with pytest.raises(ExtrasError) as info:
        install_extras(environ, prefix=env)
    assert "s3cr3t-pw" not in mask(str(info.value))
    assert "s3cr3t-pw" not in mask(environ["EXTRA_PIP_PACKAGES"])


def test_unsupported_variables_and_installers(env, environ):
    with pytest.raises(ExtrasError, match="EXTRA_APT_PACKAGES is not supported"):
        install_extras({**environ, "EXTRA_APT_PACKAGES": "curl"}, prefix=env)
    with pytest.raises(ExtrasError, match="EXTRA_CONDA_INSTALLER='nope'"):
        install_extras(
            {**environ, "EXTRA_CONDA_PACKAGES": "x", "EXTRA_CONDA_INSTALLER": "nope"}, prefix=env
        )
    with pytest.raises(ExtrasError, match="no conda installer is available"):
        install_extras(
            {**environ, "EXTRA_CONDA_PACKAGES": "x", "EXTRA_CONDA_INSTALLER": "micromamba"},
            prefix=env,
        )


# Interruption and crash recovery -------------------------------------------------------------

_DRIVER = """
import os, sys
from pathlib import Path
from bootstrap.util.log import configure_logging
from bootstrap.cli import main
configure_logging("INFO")
from bootstrap.extras import install_extras
from bootstrap.util.errors import BootstrapError
try:
    install_extras(os.environ, prefix=Path(sys.argv[1]))
except BootstrapError as exc:
    print("error:", exc, file=sys.stderr, flush=True)
    sys.exit(exc.exit_code)
"""


@pytest.mark.parametrize(
    ("slow", "wait_for"),
    [
        ("slowpkg-0.1.0-py3-none-any.whl", "Installed conda packages"),  # uv downloading
        ("tinyconda-0.1.0-py_0.tar.bz2", "Pip plan by uv"),  # the rattler worker downloading
    ],
    ids=["during-pip-step", "during-conda-step"],
)
def test_a_stop_signal_while_installing_rolls_everything_back(env, environ, repo, slow, wait_for):
    environ.update(extras(repo, conda="tinyconda", pip="tinypkg slowpkg"))
    repo.delay[slow] = 20  # that step hangs on its download
    before = journal.scan(env)
    process = subprocess.Popen(
        [sys.executable, "-c", _DRIVER, str(env)],
        env=environ,
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    lines = []
    for line in process.stderr:
        lines.append(line)
        if wait_for in line:
            break
    time.sleep(0.5)  # the installer is downloading now
    assert journal.pending(env)
    stopped = time.monotonic()
    process.send_signal(signal.SIGINT)
    rest = process.stderr.read()
    assert process.wait(timeout=15) == 130, "".join(lines) + rest
    # before the grace an installer ignoring SIGTERM would get (then SIGKILL)
    assert time.monotonic() - stopped < proc.GRACE_SECONDS - 0.5
    assert "Stopped by SIGINT: rolling the environment back" in rest
    assert "stopped by SIGINT while installing extra packages" in rest
    assert "the environment was rolled back" in rest
    assert journal.scan(env) == before


def test_an_install_killed_midway_is_rolled_back_at_the_next_start(env, environ, repo, log):
    before = journal.scan(env)
    # What a SIGKILL leaves behind: an open journal and half-installed files.
    journal.Journal.begin(env)
    site = next((env / "lib").glob("python3*/site-packages"))
    (site / "halfpkg").mkdir()
    (site / "halfpkg" / "__init__.py").write_text("")
    (env / "bin" / "halfpkg").write_text("#!/bin/sh\n")
    assert journal.pending(env)
    install_extras(environ, prefix=env)  # no extras this time: recovery still runs
    assert "An earlier install of extra packages did not finish: rolling it back" in log
    assert journal.scan(env) == before
    assert not journal.pending(env)


# TLS: an extra CA at run time ----------------------------------------------------------------


def test_extra_ca_certificate_for_https_index_and_channel(tmp_path, env, environ, repo, log):
    ca, cert, key = make_tls(tmp_path / "tls")
    own_environment = dict(os.environ)
    with PackageServer(repo.root, tls=(cert, key)) as https:
        environ.update(extras(https, conda="tinyconda", pip="tinypkg"))
        with pytest.raises(ExtrasError, match=r"(?i)certificate"):
            install_extras(environ, prefix=env)
        environ["EXTRA_CA_CERT"] = str(ca)
        install_extras(environ, prefix=env)
    assert run_python(env, "import tinyconda, tinypkg; print('ok')") == "ok"
    assert dict(os.environ) == own_environment  # the bundle is for the installers only


def test_extra_ca_certificate_errors(env, environ, tmp_path):
    environ["EXTRA_PIP_PACKAGES"] = "tinypkg"
    environ["EXTRA_CA_CERT"] = str(tmp_path / "missing.pem")
    with pytest.raises(ExtrasError, match=r"EXTRA_CA_CERT=.*cannot read it"):
        install_extras(environ, prefix=env)
    (tmp_path / "not.pem").write_text("hello")
    environ["EXTRA_CA_CERT"] = str(tmp_path / "not.pem")
    with pytest.raises(ExtrasError, match="holds no PEM certificate"):
        install_extras(environ, prefix=env)


def test_the_install_record_keeps_no_credentials(env, environ, repo):
    """installed.json is readable by anyone in the container: requirement URLs lose their
    user and password there."""
    wheel = f"{repo.url.replace('http://', 'http://lume:rec0rd-pass@')}/files/tinydep-0.1.0-py3-none-any.whl"
    environ["EXTRA_PIP_PACKAGES"] = f"--no-index {wheel}"
    install_extras(environ, prefix=env)
    record = (env / ".prefect-agent" / "extras" / "installed.json").read_text()
    assert "rec0rd-pass" not in record
    assert "lume:" not in record
    assert "/files/tinydep-0.1.0-py3-none-any.whl" in record


def test_a_ca_bundle_left_by_a_killed_install_is_removed(env, environ, tmp_path, monkeypatch):
    """A killed install's bundle goes; one of an install running beside this one (a Local
    agent's flow runs share /tmp) stays: deleting it made that install's rattler panic
    ("No CA certificates were loaded from the system"), found with tests on 3 workers."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    pem = "-----BEGIN CERTIFICATE-----\n..."
    leftover = tmp_path / "extras-ca-x1y2z3.pem"  # named as before the pid was in the name
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    dead = tmp_path / f"extras-ca-{gone}-a1b2.pem"
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as running:
        alive = tmp_path / f"extras-ca-{running.pid}-c3d4.pem"
        for path in (leftover, dead, alive):
            path.write_text(pem)
        try:
            install_extras(environ, prefix=env)  # no extras requested: leftovers still go
        finally:
            running.kill()
    assert not leftover.exists()
    assert not dead.exists()
    assert alive.exists()


def test_no_constraints_file_is_left_in_the_temporary_directory(
    env, environ, repo, tmp_path, monkeypatch
):
    """The core's constraints file goes once the install is over, installed or rolled back: a
    Local agent's flow runs share the host's /tmp, and every run installs."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    environ.update(extras(repo, pip="tinypkg"))
    install_extras(environ, prefix=env)
    assert run_python(env, "import tinypkg; print('ok')") == "ok"
    environ.update(extras(repo, pip="tinypkg badpkg"))
    with pytest.raises(ExtrasError, match="rolled back"):
        install_extras(environ, prefix=env)
    assert sorted(path.name for path in scratch.iterdir()) == []

    def locked(prefix):
        raise ExtrasError("another install holds the journal")

    monkeypatch.setattr(journal.Journal, "begin", staticmethod(locked))
    with pytest.raises(ExtrasError, match="another install"):
        install_extras(environ, prefix=env)
    assert sorted(path.name for path in scratch.iterdir()) == []
