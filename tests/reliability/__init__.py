"""Reliability and security tests: faults, signals, bad input, load, secrets.

Everything runs for real: the Docker engine, the images built from the Dockerfile, the
agent and flow-run containers. The one stand-in is the Prefect Server API
(prefect_api_double). Fixtures come from tests/fixtures (the end-to-end stand among
them), helpers from tests/helpers. Figures (timings) are printed as ``FIGURE <name>:
<value>`` lines: ``pytest -s -m reliability | grep FIGURE`` collects them.
"""
