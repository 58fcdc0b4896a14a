"""The pull policy's decisions and the puller's reading of the engine, on a stand-in
docker.APIClient that answers the way dockerd 20.10 does (a failed pull is a 200 whose
stream ends in an error line)."""

from __future__ import annotations

import base64
import json
from typing import Dict, List

import docker
import pytest

from bootstrap.agent.image_pull import (
    ImagePuller,
    ImagePullFailed,
    check_config_file,
    credentials,
    needs_pull,
    registry_of,
    stream_error,
)

IMAGE = "registry.example.org:5000/lume/flows:1.0"


class Engine:
    def __init__(self, images=(), answers: List[object] = ()) -> None:
        self.images = set(images)
        self.answers = list(answers)  # per pull: a stream (list of lines) or an exception
        self.pulls: List[Dict[str, object]] = []

    def inspect_image(self, image):
        if image not in self.images:
            raise docker.errors.ImageNotFound(f"No such image: {image}")
        return {"Id": "sha256:abc"}

    def pull(self, image, stream=False, decode=False, auth_config=None):
        assert stream  # the puller reads the answer line by line
        assert decode
        self.pulls.append({"image": image, "auth_config": auth_config})
        answer = self.answers.pop(0) if self.answers else [{"status": "Downloaded"}]
        if isinstance(answer, Exception):
            raise answer
        self.images.add(image)
        return iter(answer)


def puller(**kwargs) -> ImagePuller:
    outcomes: List[str] = []
    made = ImagePuller(
        on_pull=lambda outcome, seconds: outcomes.append(outcome), backoff=0, **kwargs
    )
    made.outcomes = outcomes  # type: ignore[attr-defined]
    return made


@pytest.mark.parametrize(
    ("policy", "present", "pull"),
    [
        ("IfNotPresent", False, True),
        ("IfNotPresent", True, False),
        ("Always", True, True),
        ("Always", False, True),
        ("Never", False, False),
        ("Never", True, False),
    ],
)
def test_the_policies_decide_as_kubernetes_does(policy, present, pull) -> None:
    assert needs_pull(policy, present) is pull


def test_if_not_present_pulls_a_missing_image_once() -> None:
    engine = Engine()
    pulls = puller(policy="IfNotPresent")
    pulls.ensure(engine, IMAGE)
    pulls.ensure(engine, IMAGE)
    assert [pull["image"] for pull in engine.pulls] == [IMAGE]
    assert pulls.outcomes == ["pulled"]


def test_always_pulls_every_time_and_never_not_at_all() -> None:
    engine = Engine(images=[IMAGE])
    always = puller(policy="Always")
    always.ensure(engine, IMAGE)
    always.ensure(engine, IMAGE)
    assert len(engine.pulls) == 2
    puller(policy="Never").ensure(engine, IMAGE)
    assert len(engine.pulls) == 2


def test_never_names_the_missing_image_and_what_to_do() -> None:
    with pytest.raises(ImagePullFailed) as failure:
        puller(policy="Never").ensure(Engine(), "lume/flows:dev")
    assert "lume/flows:dev is not on the agent's Docker engine" in str(failure.value)
    assert "docker pull lume/flows:dev" in str(failure.value)


def test_an_error_line_in_a_200_stream_is_a_failure_and_retried() -> None:
    """prefect 1.2.4 logs this answer as 'Successfully pulled'."""
    denied = [
        {"status": "Pulling from lume/flows"},
        {"errorDetail": {"message": "manifest unknown"}, "error": "manifest unknown"},
    ]
    engine = Engine(answers=[denied, denied, denied])
    pulls = puller(policy="IfNotPresent", attempts=3)
    with pytest.raises(ImagePullFailed) as failure:
        pulls.ensure(engine, IMAGE)
    assert str(failure.value) == f"Image pull of {IMAGE} failed (3 attempts): manifest unknown"
    assert len(engine.pulls) == 3
    assert pulls.outcomes == ["failed"]


def test_a_transient_failure_is_retried_to_success() -> None:
    busy = docker.errors.APIError("500 Server Error", explanation="toomanyrequests: slow down")
    engine = Engine(answers=[busy, [{"status": "Downloaded newer image"}]])
    pulls = puller(policy="Always", attempts=2)
    pulls.ensure(engine, IMAGE)
    assert len(engine.pulls) == 2
    assert pulls.outcomes == ["pulled"]


def test_the_error_line_is_found_wherever_it_comes() -> None:
    assert stream_error([{"status": "a"}, {"status": "b"}]) is None
    assert stream_error([{"errorDetail": {"message": "denied"}}]) == "denied"
    assert stream_error(["text", {"error": "unauthorized"}]) == "unauthorized"


@pytest.mark.parametrize(
    ("image", "registry"),
    [
        ("prefect-agent:dev", "docker.io"),
        ("lume/flows:1", "docker.io"),
        ("127.0.0.1:5000/flows:1", "127.0.0.1:5000"),
        ("ghcr.io/slaclab/flows@sha256:" + "a" * 64, "ghcr.io"),
    ],
)
def test_the_registry_of_an_image(image, registry) -> None:
    assert registry_of(image) == registry


def docker_config(tmp_path, registry: str, user: str, password: str) -> str:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auths": {registry: {"auth": token}}}))
    return str(path)


def test_credentials_come_from_the_file_for_the_images_registry_only(tmp_path) -> None:
    path = docker_config(tmp_path, "registry.example.org:5000", "lume", "s3cret")
    found = credentials(path, IMAGE)
    assert (found["username"], found["password"]) == ("lume", "s3cret")
    assert credentials(path, "ghcr.io/other/image:1") is None
    assert credentials(None, IMAGE) is None
    engine = Engine()
    puller(policy="IfNotPresent", config_file=path).ensure(engine, IMAGE)
    assert engine.pulls[0]["auth_config"]["password"] == "s3cret"  # noqa: S105


def test_a_config_file_that_is_not_one_is_refused_without_its_content(tmp_path) -> None:
    bad = tmp_path / "config.json"
    bad.write_text('{"auths": "hunter2"}')
    with pytest.raises(ValueError, match="no 'auths' object") as refusal:
        check_config_file(str(bad))
    assert "hunter2" not in str(refusal.value)
    bad.write_text("hunter2 is not json")
    with pytest.raises(ValueError, match=r"cannot read .* as a Docker config.json") as refusal:
        check_config_file(str(bad))
    assert "hunter2" not in str(refusal.value)
    with pytest.raises(ValueError, match="No such file"):
        check_config_file(str(tmp_path / "missing.json"))
    check_config_file(docker_config(tmp_path, "r.example.org", "u", "p"))


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("registry.example.org/lume/flows:latest", "Always"),
        ("lume/flows", "Always"),  # untagged: latest
        ("lume/flows:1.0", "IfNotPresent"),
        ("prefect-agent:prod", "IfNotPresent"),  # a local name: prefect never pulled those
        ("prefect-agent", "IfNotPresent"),
        ("lume/flows@sha256:" + "a" * 64, "IfNotPresent"),
    ],
)
def test_without_a_policy_latest_from_a_registry_is_always_pulled(image, policy) -> None:
    from bootstrap.agent.image_pull import default_policy

    assert default_policy(image) == policy


def test_without_a_policy_each_image_gets_its_own() -> None:
    engine = Engine(images=["lume/flows:latest", "lume/flows:1.0"])
    pulls = puller()
    pulls.ensure(engine, "lume/flows:latest")
    pulls.ensure(engine, "lume/flows:1.0")
    assert [pull["image"] for pull in engine.pulls] == ["lume/flows:latest"]
