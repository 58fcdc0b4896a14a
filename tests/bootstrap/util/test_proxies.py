"""bootstrap.util.proxies: the Prefect Server (and the cluster) stay direct."""

from __future__ import annotations

from bootstrap.api.client import ApiConfig
from bootstrap.util.proxies import no_proxy, proxy_environment

API = ApiConfig("http://prefect.example.org:4200/graphql")
PROXY = {"HTTPS_PROXY": "http://proxy.example.org:3128", "NO_PROXY": "intranet.example.org"}


def test_no_proxy_keeps_the_server_and_the_cluster_direct() -> None:
    assert no_proxy({}, API.url, kubernetes=False) is None  # no proxy: nothing to add
    docker = no_proxy(PROXY, API.url, kubernetes=False).split(",")
    assert docker[:2] == ["intranet.example.org", "prefect.example.org"]
    assert "127.0.0.1" in docker
    assert ".svc" not in docker
    assert ".svc" in no_proxy(PROXY, API.url, kubernetes=True).split(",")
    env = proxy_environment({**PROXY, "no_proxy": "a.example.org"}, API.url, kubernetes=False)
    assert env["HTTPS_PROXY"] == "http://proxy.example.org:3128"
    assert env["NO_PROXY"] == env["no_proxy"]
    assert env["NO_PROXY"].startswith("intranet.example.org,a.example.org,prefect.example.org")
