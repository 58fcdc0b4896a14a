"""bootstrap.startup.flow_run_check: the URL a Docker flow run gets (checked against prefect
1.2.4's own DockerAgent.populate_env_vars), the check container, and what each mode does
with the answer (a stand-in docker.APIClient; the real engine: tests/e2e/test_flow_run_check.py)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import prefect
import pytest
from prefect.agent.docker import DockerAgent
from prefect.utilities.configuration import set_temporary_config

from bootstrap.startup.flow_run_check import (
    check_container,
    check_flow_runs_reach_api,
    flow_run_api_url,
)
from bootstrap.util.errors import PreflightError

CASES = [
    ("http://localhost:4200/graphql", [], {}),
    ("http://localhost:9999/api", [], {}),  # the port and path are dropped
    ("http://localhost:4200", ["prefect-server"], {}),
    ("http://127.0.0.1:4200", [], {}),  # not rewritten
    ("http://prefect.example.org:4200", ["lume"], {}),
    ("http://localhost:4200", [], {"PREFECT__CLOUD__API": "http://10.0.0.5:4200"}),
]


def prefects_own(api: str, networks, env_vars) -> str:
    """What prefect's DockerAgent puts in a flow run's PREFECT__CLOUD__API."""
    agent = SimpleNamespace(
        networks=networks,
        env_vars=env_vars,
        flow_run_api_key=None,
        labels=[],
        log_to_cloud=True,
        client=SimpleNamespace(tenant_id=None),
    )
    run = SimpleNamespace(id="run", flow=SimpleNamespace(id="flow"))
    with set_temporary_config({"cloud.api": api, "server.port": 4300, "backend": "server"}):
        assert prefect.config.cloud.api == api
        env = DockerAgent.populate_env_vars(agent, run, "image")
    return env["PREFECT__CLOUD__API"]


@pytest.mark.parametrize(("api", "networks", "env"), CASES)
def test_the_url_is_the_one_prefects_agent_gives_flow_runs(api, networks, env) -> None:
    assert flow_run_api_url(api, env, networks, "4300") == prefects_own(api, networks, env)


def test_the_container_is_made_as_prefect_makes_a_flow_run() -> None:
    spec = check_container(
        "prefect-agent:prod",
        "http://127.0.0.1:4200",
        {"HTTPS_PROXY": "http://proxy:3128", "PREFECT__CLOUD__API": "ignored"},
        ["lume", "monitoring"],
        ["/data:/data:ro"],
    )
    assert spec.environment["PREFECT__CLOUD__API"] == "http://127.0.0.1:4200"
    assert spec.environment["HTTPS_PROXY"] == "http://proxy:3128"
    assert (spec.network, spec.more_networks) == ("lume", ["monitoring"])
    config = spec.host_config()
    assert config["binds"] == ["/data:/data:ro"]
    assert config["extra_hosts"] == {"host.docker.internal": "host-gateway"}
    assert "network_mode" not in config  # a named network: the networking config
    assert check_container("i", "u", {}, ["none"], []).host_config()["network_mode"] == "none"


class Engine:
    """docker.APIClient as far as the check uses it; the probe exits ``code``."""

    def __init__(self, code: int, output: bytes = b"") -> None:
        self.code, self.output = code, output
        self.created = {}
        self.removed = []

    def create_host_config(self, **config):
        return config

    def create_container(self, image, **kwargs):
        self.created = {"image": image, **kwargs}
        return {"Id": "c1"}

    def start(self, container):
        pass

    def wait(self, container, timeout):
        return {"StatusCode": self.code}

    def logs(self, container, stdout, stderr):
        return self.output

    def remove_container(self, container, force):
        self.removed.append(container)


def check(engine, mode="error", env=None, networks=("host",)):
    check_flow_runs_reach_api(
        engine, mode, "prefect-agent:prod", "http://localhost:4200",
        json.dumps(env or {}), list(networks), [], "4200",
    )  # fmt: skip


def test_a_flow_run_that_reaches_the_api_lets_the_agent_start() -> None:
    engine = Engine(0)
    check(engine)
    assert engine.created["environment"]["PREFECT__CLOUD__API"] == (
        "http://host.docker.internal:4200"
    )
    assert engine.created["host_config"]["network_mode"] == "host"
    assert engine.removed == ["c1"]


def test_one_that_does_not_stops_it_naming_the_url_and_why() -> None:
    engine = Engine(1, b"ConnectionError: ... Name or service not known\n")
    with pytest.raises(PreflightError) as failure:
        check(engine, networks=["none"])
    message = str(failure.value)
    assert "flow runs cannot reach the Prefect Server at http://host.docker.internal:4200" in (
        message
    )
    assert "network 'none'" in message
    assert "Name or service not known" in message
    assert engine.removed == ["c1"]  # removed, failed or not


def test_warn_logs_and_off_does_not_look(caplog) -> None:
    check(Engine(1, b"ConnectTimeout: timed out\n"), mode="warn")
    assert "flow runs cannot reach the Prefect Server" in caplog.text
    untouched = Engine(1)
    check(untouched, mode="off")
    assert untouched.created == {}
