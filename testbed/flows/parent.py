"""E2E flow of flows, as LUME-services composes them: the parent creates a run of
``e2e-four-seconds`` and waits for it (holding its own slot meanwhile)."""

from prefect import Flow
from prefect.tasks.prefect import create_flow_run, wait_for_flow_run

with Flow("e2e-parent") as flow:
    child = create_flow_run(flow_name="e2e-four-seconds", project_name="lume")
    wait_for_flow_run(child, raise_final_state=True, stream_logs=False)
