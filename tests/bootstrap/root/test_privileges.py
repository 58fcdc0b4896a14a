"""Who the entrypoint becomes: the runtime user plus the Docker socket's group."""

from __future__ import annotations

import pwd
from pathlib import Path

from bootstrap.root.privileges import SocketInfo, docker_socket_path, plan_identity

USER = pwd.struct_passwd(("prefect", "x", 1000, 1000, "", "/home/prefect", "/bin/bash"))
SOCKET = Path("/var/run/docker.sock")


def test_without_a_socket_the_user_keeps_its_own_groups() -> None:
    identity, reason = plan_identity(USER, [1000, 50], None)
    assert identity is not None
    assert (identity.uid, identity.gid, identity.groups) == (1000, 1000, (50, 1000))
    assert identity.home == "/home/prefect"
    assert "no Docker socket" in reason


def test_the_sockets_group_is_added_even_if_the_image_does_not_know_it() -> None:
    identity, reason = plan_identity(USER, [], SocketInfo(SOCKET, 0, 998, 0o660))
    assert identity is not None
    assert identity.uid == 1000
    assert 998 in identity.groups
    assert "group 998" in reason


def test_a_root_only_socket_keeps_root() -> None:
    identity, reason = plan_identity(USER, [], SocketInfo(SOCKET, 0, 0, 0o600))
    assert identity is None
    assert "usable by its owner only" in reason


def test_a_socket_owned_by_the_user_needs_no_group() -> None:
    identity, _ = plan_identity(USER, [], SocketInfo(SOCKET, 1000, 0, 0o600))
    assert identity is not None
    assert identity.groups == (1000,)


def test_docker_host_names_the_socket() -> None:
    assert docker_socket_path({}) == SOCKET
    assert docker_socket_path({"DOCKER_HOST": "unix:///run/docker.sock"}) == Path(
        "/run/docker.sock"
    )
    assert docker_socket_path({"DOCKER_HOST": "tcp://engine:2375"}) == SOCKET


def test_the_agents_engine_setting_names_the_socket_too() -> None:
    """The entrypoint must add the group of the socket the agent will actually use."""
    environ = {
        "BOOTSTRAP_DOCKER_BASE_URL": "unix:///run/user/1000/docker.sock",
        "DOCKER_HOST": "unix:///run/docker.sock",
    }
    assert docker_socket_path(environ) == Path("/run/user/1000/docker.sock")


def test_the_root_phase_loads_nothing_of_the_run_phase() -> None:
    """What runs as root stays small: no settings, API client, agent launch or their
    libraries are imported by the module that drops root."""
    import subprocess
    import sys

    code = "import sys, bootstrap.root.privileges; print(' '.join(sorted(sys.modules)))"
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    run_phase = {
        "bootstrap.settings",
        "bootstrap.agent.command",
        "bootstrap.startup",
        "bootstrap.api.client",
    }
    libraries = {"pydantic", "requests", "click", "yaml", "docker", "prefect"}
    assert not loaded & (run_phase | libraries)
    assert "bootstrap.util.engine" in loaded  # the one rule for the Docker engine it shares


def test_the_root_owned_copy_in_the_image_is_complete(tmp_path: Path) -> None:
    """The Dockerfile copies the root-phase packages whole, and every module in them imports
    with nothing else: the standard library only, no site-packages (``python -I -S``)."""
    import shutil
    import subprocess
    import sys

    from bootstrap.root import ROOT_PHASE_PACKAGES

    root = Path(__file__).resolve().parents[3]
    dockerfile = (root / "prefect-agent-docker" / "Dockerfile").read_text()
    destination = "/usr/local/lib/prefect-agent/bootstrap"
    assert f"COPY bootstrap/__init__.py {destination}/" in dockerfile
    modules = []
    for package in ROOT_PHASE_PACKAGES:
        assert f"COPY bootstrap/{package} {destination}/{package}" in dockerfile
        shutil.copytree(root / "bootstrap" / package, tmp_path / "bootstrap" / package)
        modules += [
            f"bootstrap.{package}.{path.stem}"
            for path in sorted((root / "bootstrap" / package).glob("*.py"))
            if path.stem != "__init__"
        ]
    shutil.copy(root / "bootstrap" / "__init__.py", tmp_path / "bootstrap")
    assert "bootstrap.root.privileges" in modules
    code = (
        f"import sys; sys.path.insert(0, {str(tmp_path)!r}); "
        f"import {', '.join(modules)}; print('ok')"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True
    )
    assert result.stdout.strip() == "ok", result.stderr


def test_the_run_phase_finds_the_runtime_environment_first() -> None:
    """Root's PATH (the image's) has only the root-owned wrappers; the run phase gets the
    runtime environment's commands first, once."""
    from bootstrap.root.privileges import run_phase_path

    image_path = "/usr/local/libexec/prefect-agent/bin:/usr/local/bin:/usr/bin:/bin"
    assert run_phase_path({"PATH": image_path}) == f"/opt/prefect/bin:{image_path}"
    again = run_phase_path({"PATH": f"/opt/prefect/bin:{image_path}"})
    assert again == f"/opt/prefect/bin:{image_path}"
    assert run_phase_path({"PATH": "/usr/bin", "PREFECT_ENV": "/env"}) == "/env/bin:/usr/bin"


def test_a_wrapper_without_a_command_says_so() -> None:
    from bootstrap.root.privileges import run_as_user

    assert run_as_user([]) == 2
