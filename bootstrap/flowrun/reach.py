"""What a flow run says first: ``query { hello }`` to its API URL, with ``requests`` (proxy
and CA variables honoured), as prefect's client in a flow-run container would. Run as
``python -c`` in the flow-run image: by the Docker agent's check before it polls
(:mod:`bootstrap.startup.flow_run_check`) and as the Kubernetes agent pod's init container
(:mod:`bootstrap.kubernetes.manifests`). One line on stderr when it fails."""

from __future__ import annotations

PROBE = """
import os, sys, time
url = os.environ["PREFECT__CLOUD__API"]
deadline = time.monotonic() + float(os.environ.get("PROBE_RETRY_SECONDS") or 0)
while True:
    try:
        import requests
        answer = requests.post(url, json={"query": "query { hello }"}, timeout=15)
        answer.raise_for_status()
        answer.json()["data"]["hello"]
        break
    except Exception as exc:
        text = (str(exc).splitlines() or [""])[0]
        problem = f"{type(exc).__name__}: {text}"[:400]
    if time.monotonic() >= deadline:
        print(f"flow runs cannot reach the Prefect Server at {url}: {problem}", file=sys.stderr)
        sys.exit(1)
    time.sleep(5)
"""
RETRY_ENV = "PROBE_RETRY_SECONDS"
