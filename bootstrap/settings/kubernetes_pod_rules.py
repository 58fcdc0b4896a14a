"""Value rules for what the settings put into pod specs: volumes, ``envFrom`` sources,
tolerations and affinity.

Compact forms for what operators type into a variable (``pvc:lume-data:/data``,
``gpu=true:NoSchedule``, ``secret:lume-db``), and JSON objects checked field by field
against the Kubernetes API's own types (the ``kubernetes`` client's models), so a typo
such as ``nodeSelectorTerm`` is refused here and not silently dropped by the API server.
"""

from __future__ import annotations

import json
import posixpath
import re
from typing import Any, Dict, List, NamedTuple, Optional

from bootstrap.settings.kubernetes_rules import (
    check_dns_subdomain,
    check_label_key,
    check_label_value,
)

# Volumes: KIND:SOURCE:MOUNT_PATH[:ro] ------------------------------------------------------

VOLUME_KINDS = {"hostpath": "hostPath", "pvc": "pvc", "configmap": "configMap", "secret": "secret"}
VOLUME_FORM = "KIND:SOURCE:MOUNT_PATH[:ro] (KIND: hostPath, pvc, configMap or secret)"


class VolumeSpec(NamedTuple):
    kind: str  # hostPath, pvc, configMap, secret
    source: str  # a node path, or the claim's / ConfigMap's / Secret's name
    mount_path: str
    read_only: bool

    def text(self) -> str:
        return f"{self.kind}:{self.source}:{self.mount_path}" + (":ro" if self.read_only else "")


def _absolute_path(path: str, what: str, item: str) -> str:
    if not path.startswith("/") or posixpath.normpath(path) != (path.rstrip("/") or "/"):
        raise ValueError(f"{item!r}: the {what} must be a normalised absolute path")
    return path


def parse_volume(item: str) -> VolumeSpec:
    """``pvc:lume-data:/data``, ``hostPath:/srv/lume:/data:ro``, ``secret:db:/run/db``."""
    parts = item.strip().split(":")
    if len(parts) == 4 and parts[3] in ("ro", "rw"):
        read_only = parts.pop() == "ro"
    elif len(parts) == 3:
        read_only = False
    else:
        raise ValueError(f"{item!r} is not {VOLUME_FORM}")
    kind_text, source, mount_path = parts
    kind = VOLUME_KINDS.get(kind_text.lower())
    if kind is None:
        raise ValueError(f"{item!r}: unknown volume kind {kind_text!r}; {VOLUME_FORM}")
    if kind == "hostPath":
        _absolute_path(source, "node path", item)
    else:
        check_dns_subdomain(source, what=f"{kind} name")
    _absolute_path(mount_path, "mount path", item)
    if mount_path == "/":
        raise ValueError(f"{item!r}: a volume cannot be mounted on /")
    return VolumeSpec(kind, source, mount_path, read_only)


def check_volumes(items: List[str]) -> List[str]:
    """Volume items in their canonical form; one volume per mount path."""
    specs = [parse_volume(item) for item in items]
    paths = [spec.mount_path for spec in specs]
    repeated = sorted({path for path in paths if paths.count(path) > 1})
    if repeated:
        raise ValueError(f"more than one volume mounted at {', '.join(repeated)}")
    return [spec.text() for spec in specs]


def volume_source(spec: VolumeSpec) -> Dict[str, Any]:
    """The pod ``volumes`` entry's source for ``spec`` (without its name)."""
    if spec.kind == "hostPath":
        return {"hostPath": {"path": spec.source}}
    if spec.kind == "pvc":
        return {"persistentVolumeClaim": {"claimName": spec.source, "readOnly": spec.read_only}}
    if spec.kind == "configMap":
        return {"configMap": {"name": spec.source}}
    return {"secret": {"secretName": spec.source}}


# envFrom: secret:NAME or configMap:NAME ----------------------------------------------------

ENV_FROM_KINDS = {"secret": "secretRef", "configmap": "configMapRef"}


def check_env_from(item: str) -> str:
    kind, sep, name = item.strip().partition(":")
    if not sep or kind.lower() not in ENV_FROM_KINDS:
        raise ValueError(f"{item!r} is not secret:NAME or configMap:NAME")
    check_dns_subdomain(name, what=f"{kind} name")
    return f"{'secret' if kind.lower() == 'secret' else 'configMap'}:{name}"


def env_from_entry(item: str) -> Dict[str, Any]:
    kind, _, name = item.partition(":")
    return {ENV_FROM_KINDS[kind.lower()]: {"name": name}}


# Tolerations: KEY[=VALUE][:EFFECT], or the Toleration object -------------------------------

EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
OPERATORS = ("Exists", "Equal")


def parse_toleration(item: Any) -> Dict[str, Any]:
    """``gpu=true:NoSchedule`` (as in ``kubectl taint``), ``dedicated:NoExecute`` (any value),
    or a Toleration object; checked as the API server would."""
    if isinstance(item, str):
        text, _, effect = item.strip().rpartition(":") if ":" in item else (item.strip(), "", "")
        key, sep, value = text.partition("=")
        toleration: Dict[str, Any] = {"key": key, "operator": "Equal" if sep else "Exists"}
        if sep:
            toleration["value"] = value
        if effect:
            toleration["effect"] = effect
        item = toleration
    toleration = check_object(item, "V1Toleration", "toleration")
    operator = toleration.get("operator", "Equal")
    if operator not in OPERATORS:
        raise ValueError(f"toleration {item}: operator must be Exists or Equal")
    if operator == "Exists" and toleration.get("value"):
        raise ValueError(f"toleration {item}: operator Exists takes no value")
    key = toleration.get("key") or ""
    if key:
        check_label_key(key)
        check_label_value(key, toleration.get("value") or "")
    elif operator != "Exists":
        raise ValueError(f"toleration {item}: without a key, the operator must be Exists")
    effect = toleration.get("effect")
    if effect and effect not in EFFECTS:
        raise ValueError(f"toleration {item}: effect must be one of {', '.join(EFFECTS)}")
    if "tolerationSeconds" in toleration and effect != "NoExecute":
        raise ValueError(f"toleration {item}: tolerationSeconds needs the effect NoExecute")
    return toleration


def parse_tolerations(items: Any) -> Any:
    """Toleration items: compact strings, JSON text of an object (an option's value), or
    objects (a settings file's); anything else is left for the type check."""
    if not isinstance(items, (list, tuple)):  # a tuple: repeated options
        return items
    parsed = [json.loads(item) if _is_json_object(item) else item for item in items]
    return [parse_toleration(item) for item in parsed]


def _is_json_object(item: Any) -> bool:
    return isinstance(item, str) and item.strip().startswith("{")


def check_affinity(value: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """A pod ``affinity`` (nodeAffinity, podAffinity, podAntiAffinity), as JSON or YAML."""
    if value is None or value == {}:
        return None
    return check_object(value, "V1Affinity", "affinity")


# Objects checked against the Kubernetes API types -------------------------------------------

_MISSING = re.compile(r"Invalid value for `(\w+)`, must not be `None`")
_SCALARS = {"str": str, "int": int, "bool": bool, "float": (int, float), "object": object}


def check_object(value: Any, model: str, path: str) -> Dict[str, Any]:
    """``value`` as the Kubernetes API's ``model`` (e.g. ``V1Affinity``) takes it in JSON:
    only its fields, of their types, the required ones present."""
    _check(value, model, path)
    return value


def _check(value: Any, type_name: str, path: str) -> None:
    if type_name.startswith("list["):
        if not isinstance(value, list):
            raise ValueError(f"{path}: expected a list, got {value!r}")
        for index, item in enumerate(value):
            _check(item, type_name[5:-1], f"{path}[{index}]")
        return
    if type_name.startswith(("dict(", "dict[")):  # the client spells it both ways
        if not isinstance(value, dict):
            raise ValueError(f"{path}: expected an object, got {value!r}")
        inner = type_name[5:-1].split(", ", 1)[1]
        for key, item in value.items():
            _check(item, inner, f"{path}.{key}")
        return
    if type_name in _SCALARS:
        expected = _SCALARS[type_name]
        if not isinstance(value, expected) or (type_name == "int" and isinstance(value, bool)):
            raise ValueError(f"{path}: expected {type_name}, got {value!r}")
        return
    from kubernetes import client  # only when an object is given: the import takes a while

    model = getattr(client, type_name)
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected a {type_name[2:]} object, got {value!r}")
    fields = {json_name: name for name, json_name in model.attribute_map.items()}
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise ValueError(
            f"{path}: unknown field {unknown[0]!r} (a {type_name[2:]} has "
            f"{', '.join(sorted(fields))})"
        )
    for json_name, item in value.items():
        _check(item, model.openapi_types[fields[json_name]], f"{path}.{json_name}")
    try:  # the client's models refuse a missing required field when built
        model(**{fields[key]: item for key, item in value.items()})
    except ValueError as exc:
        missing = _MISSING.search(str(exc))
        if missing is None:
            raise ValueError(f"{path}: {exc}".replace("`", "'")) from None
        field = model.attribute_map.get(missing.group(1), missing.group(1))
        raise ValueError(f"{path}: the field {field!r} is required") from None
