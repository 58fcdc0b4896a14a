"""bootstrap.agent.docker_runs against a stand-in of the docker SDK's APIClient (the real
engine is exercised by tests/e2e/test_flow_run_dies.py): how containers are created, and
how an exit is judged once."""

from __future__ import annotations

import docker
import pytest
from requests import Response

from bootstrap.agent.capacity import Capacity
from bootstrap.agent.docker_runs import (
    CREATED_HERE,
    RUNTIME_USER_ENV,
    DockerRuns,
    RunAlreadyStarted,
    own_docker_client,
)
from bootstrap.agent.docker_socket import SocketAccess, binds_a_docker_socket, socket_access
from bootstrap.agent.supervision import OWNER_LABEL, RUN_LABEL, container_name

RUN = "0c7e6c2e-1111-4222-8333-944455556666"
OTHER_RUN = "0c7e6c2e-1111-4222-8333-944455556667"
AGENT_ID = "5b1c0e7d-aaaa-4bbb-8ccc-000000000001"


def conflict() -> docker.errors.APIError:
    response = Response()
    response.status_code = 409
    return docker.errors.APIError("Conflict. The container name is already in use", response)


class Engine:
    """What the agent's APIClient answers, recorded."""

    def __init__(self, existing_status=None, images=None) -> None:
        """``existing_status``: the run's container the engine has already (None: none);
        ``images``: image -> its Config's Env."""
        self.created, self.renamed, self.removed = [], [], []
        self.users = []
        self.existing_status = existing_status
        self.images = images or {}

    def inspect_image(self, image):
        if image not in self.images:
            raise docker.errors.ImageNotFound(f"No such image: {image}")
        return {"Config": {"Env": self.images[image], "User": "0"}}

    def create_host_config(self, **options):
        return options

    def create_container(self, image, command=None, labels=None, name=None, **kw):
        if self.existing_status is not None:
            raise conflict()
        self.created.append((name, labels))
        self.users.append(kw.get("user"))
        return {"Id": "new"}

    def inspect_container(self, name):
        state = {"Status": self.existing_status, "FinishedAt": "2026-12-04T10:00:00.5Z"}
        return {"Id": "old", "State": state}

    def rename(self, container_id, name):
        self.renamed.append(name)
        self.existing_status = None  # the name is free again

    def remove_container(self, container_id, force=False):
        self.removed.append(container_id)


class Agent:
    def __init__(self) -> None:
        self.client = Api()
        self.docker_client = None


class Api:
    def __init__(self, state="Running", scheduled_at="2026-12-04T11:00:00.25+00:00") -> None:
        self._attached_headers = {"X-PREFECT-AGENT-ID": AGENT_ID}
        self.state = state
        self.scheduled_at = scheduled_at  # when the run was last Scheduled
        self.set, self.logs = [], []

    def graphql(self, query, variables=None):
        if "flow_run_state(" in query:
            return {"data": {"flow_run_state": [{"timestamp": self.scheduled_at}]}}
        return {"data": {"flow_run_by_pk": {"state": self.state}}}

    def set_flow_run_state(self, flow_run_id, state):
        self.set.append((flow_run_id, state))

    def write_run_logs(self, logs):
        self.logs += logs


def test_containers_are_named_for_their_run_owned_and_get_the_defaults() -> None:
    engine = Engine()
    client = own_docker_client(Agent(), engine, {"mem_limit": 2**30, "nano_cpus": 10**9})
    assert client.create_host_config(mem_limit="4g", auto_remove=True) == {
        "mem_limit": "4g",  # the run's own value wins
        "nano_cpus": 10**9,
        "auto_remove": False,  # the agent reads the exit first
    }
    assert "nano_cpus" not in client.create_host_config(cpu_quota=50000)  # Docker: one way
    client.create_container("img", labels={RUN_LABEL: RUN}, name="prefect-slug")
    ((name, labels),) = engine.created
    assert name == container_name(RUN)
    assert labels[OWNER_LABEL] == AGENT_ID
    assert CREATED_HERE.run_id == RUN


def test_a_run_given_the_docker_socket_gets_its_group(caplog) -> None:
    """Flow runs start as the runtime user, not root: one given the socket (the agent's
    volume or its own) needs the socket's group to use it, as the agent does."""
    client = own_docker_client(Agent(), Engine(), socket=SocketAccess(gid=998, present=True))
    agent_volume = {"/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"}}
    assert client.create_host_config(binds=agent_volume)["group_add"] == ["998"]
    own = client.create_host_config(binds=["/run/docker.sock:/sock:ro"], group_add=[100, "998"])
    assert own["group_add"] == [100, "998"]  # the run's own groups, no second 998
    more = client.create_host_config(binds=agent_volume, group_add=[100])
    assert more["group_add"] == ["100", "998"]
    assert "group_add" not in client.create_host_config(binds=["/data:/data"])
    assert "group_add" not in client.create_host_config()
    tcp = own_docker_client(Agent(), Engine(), socket=SocketAccess())  # a TCP engine
    assert "group_add" not in tcp.create_host_config(binds=agent_volume)
    assert "without the socket's group" in caplog.text  # said, not silently broken


@pytest.mark.parametrize(
    ("binds", "expected"),
    [
        (["/run/podman/podman.sock:/var/run/docker.sock"], True),  # by its target
        ([b"/var/run/docker.sock:/var/run/docker.sock:rw"], True),
        ({b"/var/run/docker.sock": {"bind": "/sock"}}, True),
        ({"/srv/docker.socket.d": {"bind": "/x"}}, False),
        (["/srv/docker/mysql/mysqld.sock:/run/mysqld/mysqld.sock"], False),
        (["/home/me/.colima/default/docker.sock:/var/run/docker.sock"], True),
        (["/data:/data:ro", "named-volume:/cache"], False),
        (None, False),
    ],
)
def test_what_counts_as_a_docker_socket(binds, expected) -> None:
    assert binds_a_docker_socket(binds) is expected


def test_a_run_given_a_socket_only_root_may_use_starts_as_the_image_says() -> None:
    """The root step keeps root for such a socket (as for the agent): forcing the runtime
    user on the run would leave it a socket it cannot use."""
    image = {"img": [f"{RUNTIME_USER_ENV}=prefect"]}
    engine = Engine(images=image)
    client = own_docker_client(Agent(), engine, socket=SocketAccess(root_only=True, present=True))
    socket_bind = client.create_host_config(binds=["/var/run/docker.sock:/var/run/docker.sock"])
    client.create_container("img", labels={RUN_LABEL: RUN}, host_config=engine_host(socket_bind))
    assert engine.users == [None]
    plain = client.create_host_config(binds=["/data:/data"])
    client.create_container("img", labels={RUN_LABEL: OTHER_RUN}, host_config=engine_host(plain))
    assert engine.users == [None, "prefect"]


def engine_host(options: dict) -> dict:
    """What docker.APIClient.create_host_config returns: the engine's HostConfig."""
    return {"Binds": options.get("binds"), "GroupAdd": options.get("group_add")}


def test_the_socket_access_is_read_from_the_agents_socket(tmp_path) -> None:
    import os
    import socket

    path = tmp_path / "docker.sock"
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(path))
        os.chmod(path, 0o660)
        assert socket_access(f"unix://{path}") == SocketAccess(
            gid=os.stat(path).st_gid, present=True
        )
        os.chmod(path, 0o600)
        owner_only = socket_access(f"unix://{path}")
        assert owner_only.gid is None
        assert owner_only.present
        assert owner_only.root_only is (os.stat(path).st_uid == 0)
    assert socket_access(f"unix://{tmp_path}/missing.sock") == SocketAccess()
    assert socket_access("tcp://127.0.0.1:2375") == SocketAccess()


def test_a_second_container_of_a_running_run_is_refused_quietly() -> None:
    engine = Engine(existing_status="running")
    client = own_docker_client(Agent(), engine)
    with pytest.raises(RunAlreadyStarted, match=r"^State update failed: flow run .* already has"):
        client.create_container("img", labels={RUN_LABEL: RUN})
    assert engine.created == []


def test_an_earlier_attempts_finished_container_is_set_aside() -> None:
    """Finished at 10:00, the run scheduled again at 11:00: a new attempt."""
    engine = Engine(existing_status="exited")
    client = own_docker_client(Agent(), engine)
    client.create_container("img", labels={RUN_LABEL: RUN})
    assert engine.renamed == [f"{container_name(RUN)}-2026-12-04T100000"]
    assert [name for name, _ in engine.created] == [container_name(RUN)]


def test_a_container_finished_within_this_attempt_means_another_agent_ran_it() -> None:
    agent = Agent()
    agent.client.scheduled_at = "2026-12-04T09:59:00+00:00"  # before the container finished
    engine = Engine(existing_status="exited")
    with pytest.raises(RunAlreadyStarted):
        own_docker_client(agent, engine).create_container("img", labels={RUN_LABEL: RUN})
    assert engine.renamed == []
    assert engine.created == []


def test_a_container_gone_meanwhile_means_another_agent_is_at_it() -> None:
    engine = Engine(existing_status="exited")

    def gone(name):
        raise docker.errors.NotFound("No such container")

    engine.inspect_container = gone
    with pytest.raises(RunAlreadyStarted):
        own_docker_client(Agent(), engine).create_container("img", labels={RUN_LABEL: RUN})


def exited(name: str, code: int, oom: bool = False) -> dict:
    return {
        "Id": f"id-{name}-{code}",
        "Name": f"/{name}",
        "Config": {"Labels": {RUN_LABEL: RUN, OWNER_LABEL: AGENT_ID}},
        "State": {"Status": "exited", "ExitCode": code, "OOMKilled": oom, "Error": "",
                  "FinishedAt": "2026-12-04T10:00:00Z"},
    }  # fmt: skip


class Watched(Engine):
    def __init__(self, details: dict) -> None:
        super().__init__()
        self.details = details

    def inspect_container(self, container_id):
        return self.details

    def logs(self, container_id, tail, timestamps):
        return b"starting\nMemoryError: cannot allocate\n"


def test_an_exit_is_judged_once_and_fails_the_live_run_with_its_reason() -> None:
    agent = Agent()
    capacity = Capacity(limit=2)
    capacity.admit(RUN, child=False)
    runs = DockerRuns(
        agent, Watched(exited(container_name(RUN), 137, oom=True)), 60, capacity=capacity
    )
    verdict = runs.handle("id")
    assert "exited 137 (OOMKilled)" in verdict.fail_message
    ((run_id, state),) = agent.client.set
    assert (run_id, state.is_failed()) == (RUN, True)
    assert "MemoryError" in agent.client.logs[-1]["message"]  # the last lines, in the run logs
    assert capacity.snapshot() == {}  # its slot is free
    assert runs.handle("id") is None  # seen already: not judged again
    assert len(agent.client.set) == 1


def test_an_earlier_attempts_container_never_fails_the_current_one() -> None:
    agent = Agent()
    runs = DockerRuns(agent, Watched(exited(f"{container_name(RUN)}-2026-12-04T100000", 1)), 60)
    assert runs.handle("old") is None
    assert agent.client.set == []


def test_a_success_is_removed_and_the_run_left_alone() -> None:
    agent = Agent()
    agent.client.state = "Success"
    engine = Watched(exited(container_name(RUN), 0))
    assert DockerRuns(agent, engine, 60).handle("id").remove
    assert engine.removed == [f"id-{container_name(RUN)}-0"]
    assert agent.client.set == []


def test_a_flow_run_of_this_image_starts_as_its_runtime_user() -> None:
    """This image starts as root only for the agent's Docker socket: flow runs start as the
    runtime user, and a run config dropping every capability still works. Other images, and
    a missing one (whose error create_container reports), as they are."""
    ours = ["PATH=/usr/bin", "PREFECT_AGENT_USER=prefect"]
    engine = Engine(images={"prefect-agent:prod": ours, "python:3.11": ["PATH=/usr/bin"]})
    client = own_docker_client(Agent(), engine)
    for image in ("prefect-agent:prod", "python:3.11", "missing:1"):
        client.create_container(image, labels={RUN_LABEL: RUN})
    assert engine.users == ["prefect", None, None]
