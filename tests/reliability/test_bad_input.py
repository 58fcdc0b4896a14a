"""Bad input, in the built image: settings, settings files, labels, EXTRA_* values, and
answers from the server that are errors or garbage.

Every case must end with a clear message and a non-zero exit code (2: settings, 3: no
usable server, 4: the API answered nonsense, 6: extras), never a bare traceback, and
must not run the container's command. The cases are independent containers: they run
concurrently (a module-scoped batch), each test then checks one result.
"""

from __future__ import annotations

import enum
import json
import typing
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional

import pytest

from bootstrap.settings import Settings, env_name
from prefect_api_double import PrefectApiDouble
from testbed.docker import Containers, Finished
from testbed.net import free_port
from tests.helpers.containers import assert_no_traceback, changes, in_env

pytestmark = [pytest.mark.reliability, pytest.mark.docker]

MARK_COMMAND = ["sh", "-c", "touch /tmp/command-ran; echo COMMAND-RAN"]
NOWHERE = "http://127.0.0.1:9"  # nothing listens: refused at once
PARALLEL = 4


# Settings: one bad value per setting ----------------------------------------------------

# A generic bad value for every setting of a type that has one; str settings need their own
# (below), and a new str setting without one fails test_every_setting_is_tried.
GENERIC_BAD = {
    bool: "perhaps",
    int: "twelve",
    float: "soon",
    "enum": "bogus",
    "list": '["unterminated',
    "dict": "no-equals-sign",
}
STR_BAD = {
    "tenant": "   ",
    "tenant_slug": "Not A Slug",
    "agent_name": "   ",
    "agent_address": "ftp://somewhere:21",
    "docker_base_url": "ftp://engine",
    "kubernetes_namespace": "Bad_NS",
    "kubernetes_service_account_name": "Bad_SA",
    "kubernetes_image": "no spaces allowed:1",
    "kubernetes_name": "Bad_Name",
    "kubernetes_agent_namespace": "Bad_NS",
    "kubernetes_agent_cpu_request": "lots",
    "kubernetes_agent_cpu_limit": "lots",
    "kubernetes_agent_memory_request": "lots",
    "kubernetes_agent_memory_limit": "lots",
    "kubernetes_job_cpu_request": "lots",
    "kubernetes_job_cpu_limit": "lots",
    "kubernetes_job_memory_request": "lots",
    "kubernetes_job_memory_limit": "lots",
    "kubernetes_api_key_secret": "Bad_Secret",
    "kubernetes_api_key_secret_key": "bad key!",
    "kubernetes_agent_priority_class": "High_Priority",
    "kubernetes_job_priority_class": "High_Priority",
    "kubernetes_monitoring_namespace": "Monitoring",
    "kubernetes_prefect_api": "not-a-url",
    "docker_memory": "lots",
    "docker_pull_policy": "sometimes",
    "docker_flow_run_check": "sometimes",
    "docker_flow_run_check_image": "no spaces allowed:1",
    "docker_config_file": "relative/config.json",
    "docker_shm_size": "2 gigs",
    "flow_run_max_memory": "-1g",
}
FREE_FORM = {"kubernetes_job_template"}  # any path or URL is acceptable here
# Values of the right type that a validator refuses.
SEMANTIC_BAD = [
    ("wait_timeout", "0"),
    ("wait_timeout", "-5"),
    ("max_polls", "0"),
    ("docker_client_timeout", "-1"),
    ("kubernetes_run_as_user", "0"),
    ("agent_address", "http://:0"),
    ("agent_address", "http://:99999"),
    ("agent_labels", '["ok", "bell\\u0007"]'),
    ("agent_labels", json.dumps(["x" * 256])),
    ("agent_env", "1BAD=x"),
    ("projects", "a,a"),
    ("projects", '[{"nam": "x"}]'),
    ("docker_volumes", "relative/path"),
    ("docker_networks", "bad name!"),
    ("kubernetes_labels", "app.kubernetes.io/name=mine"),
    ("kubernetes_agent_memory_limit", "1Mi"),  # below the default request (256Mi)
    ("agent_env_files", "DB_PASSWORD=relative/secret"),
    ("agent_labels", '["gpu node"]'),
    ("agent_labels", "lume;docker"),
    ("kubernetes_job_volumes", "nfs:server:/data"),
    ("kubernetes_job_tolerations", "gpu:NoSchedul"),
    ("kubernetes_agent_affinity", '{"nodeAfinity": {}}'),
    ("kubernetes_agent_env_from", "vault:db"),
    ("docker_failed_container_retention", "-1"),
    ("kubernetes_job_ttl_seconds", "-1"),
    ("agent_max_flow_runs", "-1"),
    ("docker_pull_attempts", "0"),
    ("docker_cpus", "0"),
    ("flow_run_max_pids", "0"),
]


def generic_bad_value(name: str) -> Optional[str]:
    model_field = Settings.__fields__[name]
    outer = model_field.outer_type_
    origin = typing.get_origin(outer)
    if origin in (list, typing.List):
        return GENERIC_BAD["list"]
    if origin in (dict, typing.Dict):
        return GENERIC_BAD["dict"]
    if isinstance(outer, type) and issubclass(outer, enum.Enum):
        return GENERIC_BAD["enum"]
    for kind in (bool, int, float):  # pydantic's constrained kinds (ge=0) are subclasses
        if isinstance(outer, type) and issubclass(outer, kind):
            return GENERIC_BAD[kind]
    return STR_BAD.get(name)


SETTING_CASES = {
    f"{name}={value!r}": (name, value)
    for name in Settings.__fields__
    if (value := generic_bad_value(name)) is not None
}
SETTING_CASES.update({f"{name}={value!r}": (name, value) for name, value in SEMANTIC_BAD})


# A variable that is no setting would leave its setting at the default, silently.
MISSPELT_VARIABLES = {
    "tennant": ("BOOTSTRAP_TENNANT", "BOOTSTRAP_TENANT"),
    "singular-label": ("BOOTSTRAP_AGENT_LABEL", "BOOTSTRAP_AGENT_LABELS"),
    "lower-case": ("bootstrap_projets", "BOOTSTRAP_PROJECTS"),
}

# Settings files --------------------------------------------------------------------------

SETTINGS_FILES: Dict[str, bytes] = {
    "not-yaml": b"tenant: [unclosed\n",
    "a-list": b"- tenant\n- projects\n",
    "unknown-key": b"tenent: lume\n",
    "wrong-type": b"max_polls: soon\n",
    "not-utf8": b"tenant: \xff\xfe\x00\x80\n",
}
SETTINGS_FILE_CASES = {
    **{name: (f"/settings/{name}.yaml", name) for name in SETTINGS_FILES},
    "a-directory": ("/settings", "is a directory"),
    "missing": ("/settings/missing.yaml", "No such file"),
}
SETTINGS_FILE_EXPECTED = {
    "not-yaml": "is not valid YAML",
    "a-list": "must be a mapping of setting names to values, not a list",
    "unknown-key": "unknown setting 'tenent' in /settings/unknown-key.yaml (did you mean",
    "wrong-type": "invalid setting max_polls in /settings/wrong-type.yaml='soon'",
    "not-utf8": "is not UTF-8 text",
    "a-directory": "cannot read settings file /settings: Is a directory",
    "missing": "cannot read settings file /settings/missing.yaml: No such file or directory",
}


# EXTRA_* ---------------------------------------------------------------------------------

HUGE = 120_000  # the kernel refuses a variable over 128 KiB (MAX_ARG_STRLEN) at exec
EXTRA_CASES: Dict[str, Dict[str, str]] = {
    "semicolon": {"EXTRA_PIP_PACKAGES": "tinypkg; touch /tmp/pwned"},
    "command-substitution": {"EXTRA_PIP_PACKAGES": "$(touch /tmp/pwned) tinypkg"},
    "backticks": {"EXTRA_PIP_PACKAGES": "`touch /tmp/pwned`"},
    "and-and": {"EXTRA_PIP_PACKAGES": "tinypkg && touch /tmp/pwned"},
    "pipe": {"EXTRA_PIP_PACKAGES": "tinypkg | sh"},
    "redirect": {"EXTRA_PIP_PACKAGES": "tinypkg > /tmp/pwned"},
    "newline": {"EXTRA_PIP_PACKAGES": "tinypkg\ntouch /tmp/pwned"},
    "unbalanced-quote": {"EXTRA_PIP_PACKAGES": "tinypkg 'oops"},
    "index-url-file": {"EXTRA_PIP_PACKAGES": "--index-url file:///etc/passwd tinypkg"},
    "requirement-file-unreadable": {"EXTRA_PIP_PACKAGES": "-r /etc/shadow"},
    "editable-dot": {"EXTRA_PIP_PACKAGES": "-e ."},
    "a-path": {"EXTRA_PIP_PACKAGES": "/etc"},
    "unreachable-url": {"EXTRA_PIP_PACKAGES": f"{NOWHERE}/tinypkg-0.1.0-py3-none-any.whl"},
    "option-target": {"EXTRA_PIP_PACKAGES": "--target /tmp/pwned tinypkg"},
    "option-prefix": {"EXTRA_PIP_PACKAGES": "--prefix=/tmp tinypkg"},
    "option-user": {"EXTRA_PIP_PACKAGES": "--user tinypkg"},
    "option-root": {"EXTRA_PIP_PACKAGES": "--root / tinypkg"},
    "option-config": {"EXTRA_PIP_PACKAGES": "--config-settings=x=y tinypkg"},
    "only-options": {"EXTRA_PIP_PACKAGES": "--no-deps --pre"},
    "huge-word": {"EXTRA_PIP_PACKAGES": "a" * HUGE},
    "huge-list": {"EXTRA_PIP_PACKAGES": " ".join(f"p{i}" for i in range(HUGE // 7))},
    "conda-semicolon": {"EXTRA_CONDA_PACKAGES": "tinyconda; rm -rf /"},
    "conda-option": {"EXTRA_CONDA_PACKAGES": "--prefix /tmp tinyconda"},
    "conda-file-channel": {"EXTRA_CONDA_PACKAGES": "-c file:///etc tinyconda"},
    "conda-only-options": {"EXTRA_CONDA_PACKAGES": "--override-channels"},
    "apt": {"EXTRA_APT_PACKAGES": "curl"},
    "pip-installer": {"EXTRA_PIP_INSTALLER": "curl", "EXTRA_PIP_PACKAGES": "tinypkg"},
    "ca-cert-missing": {"EXTRA_CA_CERT": "/no/such/ca.pem", "EXTRA_PIP_PACKAGES": "tinypkg"},
    "ca-cert-not-pem": {"EXTRA_CA_CERT": "/etc/hostname", "EXTRA_PIP_PACKAGES": "tinypkg"},
}
# Nothing may reach a real index: every default index points nowhere.
NO_INDEX = {
    "UV_INDEX_URL": f"{NOWHERE}/simple",
    "PIP_INDEX_URL": f"{NOWHERE}/simple",
    "CONDA_CHANNELS": f"{NOWHERE}/channel",
}


# Server answers ----------------------------------------------------------------------------

HELLO = b'{"data": {"hello": "Hello, world"}}'
NO_TENANT = b'{"data": {"tenant": []}}'


def canned(*bodies: bytes) -> Callable[[PrefectApiDouble], None]:
    """The double answers the next requests with these bodies (HTTP 200), in order."""

    def inject(api: PrefectApiDouble) -> None:
        for body in bodies:
            api.inject_faults(1, "status", status=200, body=body)

    return inject


SERVER_CASES: Dict[str, tuple] = {
    # case: (inject faults, exit code, expected message, extra environment)
    "garbage-forever": (lambda api: api.garbage_next(100_000), 3, "the answer is not JSON", {}),
    "http-500-forever": (lambda api: api.fail_next(100_000), 3, "last error: HTTP 500", {}),
    "dropped-forever": (
        lambda api: api.inject_faults(100_000, "drop"),
        3,
        "Remote end closed connection without response",
        {},
    ),
    "http-404-html": (
        lambda api: api.inject_faults(100_000, "status", 404, b"<html>Not Found</html>"),
        3,
        "HTTP 404 Not Found: '<html>Not Found</html>'",
        {},
    ),
    "deeply-nested-json": (
        lambda api: api.inject_faults(100_000, "status", 200, b"[" * 100_000 + b"]" * 100_000),
        3,
        "the answer is not JSON",
        {},
    ),
    "tenant-not-a-list": (
        canned(HELLO, b'{"data": {"tenant": {"id": "x"}}}'),
        4,
        "unexpected answer to the tenant query: {'id': 'x'}",
        {},
    ),
    "tenant-id-not-a-string": (
        canned(HELLO, b'{"data": {"tenant": [{"id": 42}]}}'),
        4,
        "unexpected answer to the tenant query: [{'id': 42}]",
        {"BOOTSTRAP_AGENT_TYPE": "local"},  # no Docker preflight: straight to the agent
    ),
    "create-tenant-not-an-object": (
        canned(HELLO, NO_TENANT, b'{"data": {"create_tenant": "an id"}}'),
        4,
        "unexpected answer to create_tenant: {'create_tenant': 'an id'}",
        {},
    ),
    "tenant-query-error": (
        canned(HELLO, b'{"errors": [{"message": "permission denied"}]}'),
        4,
        "permission denied",
        {},
    ),
    "project-create-error": (
        canned(
            HELLO,
            b'{"data": {"tenant": [{"id": "8a4b0d5e-0000-4000-8000-000000000001"}]}}',
            b'{"data": {"project": []}}',
            b'{"errors": [{"message": "quota exceeded"}]}',
        ),
        4,
        "creating project 'lume' failed: quota exceeded",
        {"BOOTSTRAP_PROJECTS": "lume"},
    ),
}


# The batch ---------------------------------------------------------------------------------


@dataclass
class Case:
    image: str
    environment: Dict[str, str]
    command: Optional[List[str]] = None
    volumes: Dict[str, Dict[str, str]] = field(default_factory=dict)


@pytest.fixture(scope="module")
def settings_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("settings")
    directory.chmod(0o755)
    for name, content in SETTINGS_FILES.items():
        path = directory / f"{name}.yaml"
        path.write_bytes(content)
        path.chmod(0o644)
    return directory


@pytest.fixture(scope="module")
def doubles() -> Iterator[Dict[str, PrefectApiDouble]]:
    apis = {}
    for name, (inject, *_rest) in SERVER_CASES.items():
        apis[name] = PrefectApiDouble().start()
        inject(apis[name])
    yield apis
    for api in apis.values():
        api.stop()


@pytest.fixture(scope="module")
def results(docker_client, prod_image, settings_dir, doubles) -> Iterator[Dict[str, tuple]]:
    """Run every case (concurrently); case id -> its finished container."""
    nowhere = {"PREFECT__CLOUD__API": NOWHERE, "BOOTSTRAP_WAIT_TIMEOUT": "3"}
    cases: Dict[str, Case] = {}
    for case_id, (name, value) in SETTING_CASES.items():
        cases[f"setting:{case_id}"] = Case(prod_image, {**nowhere, env_name(name): value})
    for case_id, (variable, _) in MISSPELT_VARIABLES.items():
        cases[f"variable:{case_id}"] = Case(prod_image, {**nowhere, variable: "lume"})
    mount = {str(settings_dir): {"bind": "/settings", "mode": "ro"}}
    for case_id, (path, _) in SETTINGS_FILE_CASES.items():
        environment = {**nowhere, "BOOTSTRAP_SETTINGS_FILE": path}
        cases[f"file:{case_id}"] = Case(prod_image, environment, volumes=mount)
    for case_id, values in EXTRA_CASES.items():
        cases[f"extra:{case_id}"] = Case(prod_image, {**NO_INDEX, **values}, MARK_COMMAND)
    for case_id, (_, _, _, extra) in SERVER_CASES.items():
        environment = {
            "PREFECT__CLOUD__API": doubles[case_id].url,
            "BOOTSTRAP_WAIT_TIMEOUT": "3",
            "BOOTSTRAP_AGENT_ADDRESS": f"http://:{free_port()}",
            **extra,
        }
        cases[f"server:{case_id}"] = Case(prod_image, environment)

    registry = Containers(docker_client)

    def run(case: Case):
        container = registry.run(
            case.image, case.command, environment=case.environment, volumes=case.volumes
        )
        status = container.wait(timeout=120)["StatusCode"]
        output = container.logs().decode(errors="replace")
        return Finished(status, output, ""), container

    try:
        with ThreadPoolExecutor(PARALLEL) as pool:
            futures = {case_id: pool.submit(run, case) for case_id, case in cases.items()}
            yield {case_id: future.result() for case_id, future in futures.items()}
    finally:
        registry.remove_all()


def check_clean_failure(finished: Finished, exit_code: int) -> str:
    assert finished.exit_code == exit_code, finished
    assert_no_traceback(finished.output)
    assert "COMMAND-RAN" not in finished.output
    return finished.output


# The tests ---------------------------------------------------------------------------------


def test_every_setting_is_tried() -> None:
    """A new setting gets a generic bad value from its type; a new str setting needs one in
    STR_BAD (or a place in FREE_FORM)."""
    tried = {name for name, _ in SETTING_CASES.values()}
    assert set(Settings.__fields__) - tried == FREE_FORM


@pytest.mark.parametrize("case_id", list(SETTING_CASES))
def test_a_bad_setting_exits_2_naming_the_variable(results, case_id: str) -> None:
    name, _ = SETTING_CASES[case_id]
    finished, _ = results[f"setting:{case_id}"]
    output = check_clean_failure(finished, 2)
    assert f"invalid setting {env_name(name)}" in output
    assert "Waiting up to" not in output  # refused before anything else


@pytest.mark.parametrize("case_id", list(MISSPELT_VARIABLES))
def test_a_misspelt_variable_exits_2_naming_the_one_meant(results, case_id: str) -> None:
    variable, meant = MISSPELT_VARIABLES[case_id]
    finished, _ = results[f"variable:{case_id}"]
    output = check_clean_failure(finished, 2)
    assert f"unknown setting {variable} (did you mean {meant}?)" in output


@pytest.mark.parametrize("case_id", list(SETTINGS_FILE_CASES))
def test_a_malformed_settings_file_exits_2_naming_it(results, case_id: str) -> None:
    finished, _ = results[f"file:{case_id}"]
    output = check_clean_failure(finished, 2)
    assert SETTINGS_FILE_EXPECTED[case_id] in output


@pytest.mark.parametrize("case_id", list(EXTRA_CASES))
def test_hostile_extras_are_refused_and_change_nothing(results, case_id: str) -> None:
    finished, container = results[f"extra:{case_id}"]
    output = check_clean_failure(finished, 6)
    assert "ERROR - bootstrap | " in output
    assert len(output) < 20_000, f"{len(output)} characters of output"
    changed = changes(container)
    assert not [path for path in changed if "pwned" in path], changed
    assert "A /tmp/command-ran" not in changed
    assert in_env(changed) == []


def test_a_variable_over_the_kernels_limit_stops_the_container_before_anything_runs(
    containers, prod_image
) -> None:
    result = containers.run_to_end(
        prod_image, MARK_COMMAND, environment={"EXTRA_PIP_PACKAGES": "a" * 1_000_000}
    )
    assert result.exit_code != 0
    assert "argument list too long" in result.output
    assert "COMMAND-RAN" not in result.output


@pytest.mark.parametrize("case_id", list(SERVER_CASES))
def test_errors_and_garbage_from_the_server_exit_cleanly(results, doubles, case_id) -> None:
    _, exit_code, expected, _ = SERVER_CASES[case_id]
    finished, _ = results[f"server:{case_id}"]
    output = check_clean_failure(finished, exit_code)
    assert expected in output
    assert doubles[case_id].agents() == []  # no agent started on a bad answer


def test_labels_with_odd_characters_reach_the_server_unchanged(
    containers, prod_image, prefect_api
) -> None:
    # inner whitespace and ';' are refused (SEMANTIC_BAD): one label no run would ask for
    labels = ["λ-ü", "a,b", "emoji-🚀", "  padded  ", "quote'\"", "$HOME"]
    result = containers.run_to_end(
        prod_image,
        environment={
            "PREFECT__CLOUD__API": prefect_api.url,
            "BOOTSTRAP_AGENT_TYPE": "local",
            "BOOTSTRAP_AGENT_LABELS": json.dumps(labels),
            "BOOTSTRAP_AGENT_ADDRESS": f"http://:{free_port()}",
            "BOOTSTRAP_MAX_POLLS": "1",
        },
        timeout=120,
    )
    assert result.exit_code == 0, result
    (agent,) = prefect_api.agents()
    expected = [label.strip() for label in labels]
    assert sorted(agent["labels"]) == sorted(expected)
    assert_no_traceback(result.output)
