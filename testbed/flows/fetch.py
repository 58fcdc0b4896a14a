"""E2E flow: fetch a URL with the standard library (which honours the proxy variables and,
through SSL_CERT_FILE, the CA bundle the entrypoint makes of EXTRA_CA_CERT)."""

import urllib.request

from prefect import Flow, Parameter, task


@task(log_stdout=True)
def fetch(url: str, expected: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - the test's URL
        body = response.read().decode()
    print(f"fetched {url}: {body!r}")
    if expected not in body:
        raise ValueError(f"{url} answered {body!r}, not {expected!r}")
    return body


with Flow("e2e-fetch") as flow:
    fetch(Parameter("url"), Parameter("expected"))
