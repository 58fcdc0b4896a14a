"""No root from code the runtime user can write.

The attack: uid 1000 (the agent, or flow code, which runs in the same image) writes a
``.pth`` file, a ``sitecustomize.py`` and look-alike commands wherever it can, and waits for
something running as root to load them: the image's health check (every 30 s), the
entrypoint on ``docker restart``, a ``docker exec``. Each trigger is fired here; the planted
code records who ran it. It must have run (as uid 1000: the plant works) and never as root.
"""

from __future__ import annotations

from typing import List

import pytest

from testbed.docker import HOST_SOCKET, socket_gid, wait_for_log
from testbed.flow_runs import AGENT_READY
from testbed.net import free_port

pytestmark = [pytest.mark.reliability, pytest.mark.docker]

RECORD = "/tmp/planted.log"
PAYLOAD = f"""import os, sys
with open({RECORD!r}, "a") as record:
    record.write(f"python uid={{os.getuid()}} euid={{os.geteuid()}} argv={{sys.argv[:3]}}\\n")
"""
WRAPPER = (  # a look-alike command: records who ran it, then runs the real one
    '#!/bin/sh\\necho "shell uid=$(/usr/bin/id -ru) euid=$(/usr/bin/id -u) argv=[%s]" '
    f'>> {RECORD}\\nexec %s "$@"\\n'
)
# Everywhere uid 1000 can write that Python or a shell might look at.
PLANT = f"""
set -eu
cat > /tmp/payload.py <<'PAYLOAD'
{PAYLOAD}PAYLOAD
: > {RECORD}; chmod 666 {RECORD}
site=$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
user_site=$(python -c 'import site; print(site.getusersitepackages())')
for dir in "$site" "$user_site" "$HOME" /tmp /opt/prefect/lib; do
    mkdir -p "$dir"
    echo "import os; exec(open('/tmp/payload.py').read())" > "$dir/zz-planted.pth"
    cp /tmp/payload.py "$dir/sitecustomize.py"
    cp /tmp/payload.py "$dir/usercustomize.py"
done
for name in id tini stat env prefect-agent-entrypoint; do
    real=$(command -v "$name" || echo /bin/true)
    printf '{WRAPPER}' "$name" "$real" > "/opt/prefect/bin/$name"
    chmod +x "/opt/prefect/bin/$name"
done
"""


def plant(container) -> None:
    code, output = container.exec_run(["sh", "-c", PLANT], user="1000")
    assert code == 0, output.decode()


def records(container) -> List[str]:
    code, output = container.exec_run(["cat", RECORD], user="1000")
    assert code == 0, output.decode()
    return output.decode().splitlines()


def fire_the_health_check(container) -> None:
    """The image's HEALTHCHECK command, as Docker runs it: as the container's user."""
    test = container.attrs["Config"]["Healthcheck"]["Test"]
    assert test[0] == "CMD"
    user = container.attrs["Config"].get("User") or ""
    code, output = container.exec_run(test[1:], user=user)
    assert code == 0, output.decode()  # the agent is healthy: the check really ran,
    assert "/api/health: ok" in output.decode()  # and probed it (not "no agent here")


def restart(container) -> None:
    container.restart(timeout=30)
    wait_for_log(container, rf"(?s){AGENT_READY}.*{AGENT_READY}", timeout=120)


def start_agent(containers, image: str, prefect_api, **options):
    return containers.run(
        image,
        environment={
            "PREFECT__CLOUD__API": prefect_api.url,
            "BOOTSTRAP_AGENT_ADDRESS": f"http://127.0.0.1:{free_port()}",
        },
        volumes={HOST_SOCKET: {"bind": HOST_SOCKET, "mode": "rw"}},
        **options,
    )


def assert_never_root(lines: List[str]) -> None:
    assert any(line.startswith("python uid=1000") for line in lines), lines  # the plant works
    assert not [line for line in lines if "uid=0 " in line or "euid=0 " in line], lines


def test_the_image_default_runs_nothing_as_root(containers, prod_image, prefect_api) -> None:
    agent = start_agent(containers, prod_image, prefect_api, group_add=[socket_gid()])
    wait_for_log(agent, AGENT_READY, timeout=120)
    plant(agent)
    fire_the_health_check(agent)
    restart(agent)
    fire_the_health_check(agent)
    for command in (["python", "-c", "pass"], ["prefect-agent-bootstrap", "--version"], ["id"]):
        code, output = agent.exec_run(command)  # a default docker exec
        assert code == 0, output.decode()
    assert_never_root(records(agent))


def test_started_as_root_nothing_planted_runs_as_root(containers, prod_image, prefect_api) -> None:
    """``docker run --user 0``: the entrypoint's root phase and the health check run with the
    base's own interpreter, isolated (-I -S), and root-owned code."""
    agent = start_agent(containers, prod_image, prefect_api, user="0")
    wait_for_log(agent, AGENT_READY, timeout=120)
    plant(agent)
    fire_the_health_check(agent)  # as root: the container's user
    restart(agent)  # the entrypoint starts as root again, and drops root
    fire_the_health_check(agent)
    lines = records(agent)
    assert_never_root(lines)
    assert any("bootstrap" in line for line in lines)  # the restarted bootstrap, as uid 1000


def test_no_setuid_binaries_and_nothing_writable_by_everyone(containers, any_image) -> None:
    probe = (
        "find / -xdev -type f -perm /6000 2>/dev/null;"
        "find /opt/prefect /var/cache/prefect-agent /home -perm -o+w ! -type l 2>/dev/null"
    )
    result = containers.run_to_end(any_image, ["sh", "-c", probe])
    assert result.exit_code == 0, result
    assert result.stdout.strip() == ""
    root_owned = [
        "/usr/local/lib/prefect-agent/root-step.py",
        "/usr/local/lib/prefect-agent/bootstrap/root/privileges.py",
        "/usr/local/bin/prefect-agent-entrypoint",
        "/usr/local/libexec/prefect-agent",
    ]
    owners = containers.run_to_end(any_image, ["stat", "-c", "%U %a %n", *root_owned])
    for line in owners.stdout.splitlines():
        owner, mode, _ = line.split(" ", 2)
        assert owner == "root", line
        assert int(mode, 8) & 0o022 == 0, line
