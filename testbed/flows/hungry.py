"""E2E flow whose task needs far more memory than its container may have: an OOM kill."""

from prefect import Flow, task


@task
def allocate() -> int:
    block = bytearray(1024 * 2**20)  # 1 GiB, touched page by page below
    for index in range(0, len(block), 4096):
        block[index] = 1
    return len(block)


with Flow("e2e-hungry") as flow:
    allocate()
