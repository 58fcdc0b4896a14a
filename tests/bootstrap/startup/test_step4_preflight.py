"""Preflight: an agent that cannot run here is stopped before it starts, with the reason."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from bootstrap.startup.step4_preflight import SERVICE_ACCOUNT_TOKEN, check_docker, check_kubernetes
from bootstrap.util.errors import PreflightError


def test_missing_docker_socket_is_explained(tmp_path: Path) -> None:
    with pytest.raises(PreflightError, match=r"no Docker socket at .*Mount it"):
        check_docker(f"unix://{tmp_path}/docker.sock")


@pytest.mark.parametrize("kind", ["directory", "file"])
def test_something_else_than_a_socket_is_named_as_such(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "docker.sock"  # docker run -v makes a directory for a missing host path
    path.mkdir() if kind == "directory" else path.write_text("")
    with pytest.raises(PreflightError, match=rf"docker.sock is not a socket \(a {kind}\)"):
        check_docker(f"unix://{path}")


def test_a_socket_nobody_answers_on_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "docker.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))  # exists, but is not listening: connection refused
    try:
        with pytest.raises(PreflightError, match="does not answer"):
            check_docker(f"unix://{path}")
    finally:
        listener.close()


def test_kubernetes_without_any_configuration_names_both_options(tmp_path: Path) -> None:
    with pytest.raises(PreflightError) as info:
        check_kubernetes({}, home=tmp_path)
    message = str(info.value)
    assert "no in-cluster configuration" in message
    assert str(SERVICE_ACCOUNT_TOKEN) in message
    assert str(tmp_path / ".kube" / "config") in message


def test_kubernetes_with_a_kubeconfig_passes(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    check_kubernetes({"KUBECONFIG": str(kubeconfig)}, home=tmp_path)
    with pytest.raises(PreflightError, match="KUBECONFIG="):
        check_kubernetes({"KUBECONFIG": str(tmp_path / "missing")}, home=tmp_path)
