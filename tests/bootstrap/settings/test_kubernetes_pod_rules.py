"""bootstrap.settings.kubernetes_pod_rules: volumes, envFrom, tolerations and affinity as
operators type them, refused the way the API server would refuse them."""

from __future__ import annotations

import pytest

from bootstrap.settings import kubernetes_pod_rules as pods


def test_volumes_in_their_canonical_form() -> None:
    assert pods.check_volumes(["PVC:lume-data:/data", "hostpath:/srv/models:/models:ro"]) == [
        "pvc:lume-data:/data",
        "hostPath:/srv/models:/models:ro",
    ]
    spec = pods.parse_volume("secret:lume-db:/run/secrets/lume:ro")
    assert pods.volume_source(spec) == {"secret": {"secretName": "lume-db"}}
    assert spec.read_only


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("pvc:data", "is not KIND:SOURCE:MOUNT_PATH[:ro]"),
        ("nfs:server:/data", "unknown volume kind 'nfs'"),
        ("pvc:Data:/data", "not a valid Kubernetes pvc name"),
        ("hostPath:srv/data:/data", "the node path must be a normalised absolute path"),
        ("pvc:data:/data/../etc", "the mount path must be a normalised absolute path"),
        ("pvc:data:/", "cannot be mounted on /"),
        ("pvc:data:/data:rx", "is not KIND:SOURCE:MOUNT_PATH[:ro]"),
    ],
)
def test_bad_volumes(item: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        pods.check_volumes([item])


def test_tolerations_in_kubectl_taint_syntax_or_as_objects() -> None:
    assert pods.parse_tolerations(["gpu=true:NoSchedule", "spot", '{"operator": "Exists"}']) == [
        {"key": "gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"},
        {"key": "spot", "operator": "Exists"},
        {"operator": "Exists"},  # tolerates every taint
    ]


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("gpu:NoSchedul", "effect must be one of"),
        ({"key": "gpu", "operator": "In"}, "operator must be Exists or Equal"),
        ({"key": "gpu", "operator": "Exists", "value": "x"}, "Exists takes no value"),
        ({"operator": "Equal", "value": "x"}, "without a key"),
        (
            {"key": "a", "effect": "NoSchedule", "tolerationSeconds": 5},
            "needs the effect NoExecute",
        ),
        ({"key": "a", "tolerationSecond": 5}, "unknown field 'tolerationSecond'"),
        ({"key": "a", "tolerationSeconds": "5"}, "expected int"),
        ("bad key!=x", "label key"),
    ],
)
def test_bad_tolerations(item, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pods.parse_tolerations([item])


def test_affinity_is_checked_against_the_api_types() -> None:
    good = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
                ]
            }
        }
    }
    assert pods.check_affinity(good) == good
    assert pods.check_affinity({}) is None
    missing = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {}}}
    with pytest.raises(ValueError, match="'nodeSelectorTerms' is required"):
        pods.check_affinity(missing)
    with pytest.raises(ValueError, match=r"affinity: unknown field 'nodeAfinity'"):
        pods.check_affinity({"nodeAfinity": {}})
    wrong = {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": {}}}
    with pytest.raises(ValueError, match="expected a list"):
        pods.check_affinity(wrong)


def test_env_from_sources() -> None:
    assert pods.check_env_from("ConfigMap:lume") == "configMap:lume"
    assert pods.env_from_entry("secret:db") == {"secretRef": {"name": "db"}}
    with pytest.raises(ValueError, match="secret:NAME or configMap:NAME"):
        pods.check_env_from("db")
