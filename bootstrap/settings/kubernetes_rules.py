"""Value rules for settings that end up in Kubernetes objects: names, labels, quantities,
image references.

Each ``check_*`` returns the value or raises ``ValueError`` with a message that says what
the value must look like; :mod:`bootstrap.settings.loading` turns that into a SettingsError
naming the setting. The rules are Kubernetes' own (apimachinery's validation and resource.Quantity,
the container image reference grammar), so a bad value is refused here rather than by the
API server after ``kubectl apply`` or, worse, by the agent when it submits a flow run.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Dict, Mapping, NamedTuple, Optional

DNS_LABEL_MAX = 63
DNS_SUBDOMAIN_MAX = 253

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")

# resource.Quantity: <signedNumber><suffix>; suffix: binary SI, decimal SI or an exponent.
_QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$"
)
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}

# Container image references (the distribution/reference grammar, without normalisation).
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_IMAGE = re.compile(
    rf"^(?P<name>(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?$"
)


def _check_dns(value: str, pattern: re.Pattern, limit: int, what: str, chars: str) -> str:
    if len(value) > limit or not pattern.match(value):
        raise ValueError(
            f"{value!r} is not a valid Kubernetes {what}: at most {limit} lower-case letters, "
            f"digits{chars}, starting and ending with a letter or digit"
        )
    return value


def check_dns_label(value: str, what: str = "name") -> str:
    """An RFC 1123 label: namespaces, Deployment and container names."""
    return _check_dns(value, _DNS_LABEL, DNS_LABEL_MAX, what, " and '-'")


def check_dns_subdomain(value: str, what: str = "object name") -> str:
    """An RFC 1123 subdomain: most object names (Secrets, ServiceAccounts, ...)."""
    return _check_dns(value, _DNS_SUBDOMAIN, DNS_SUBDOMAIN_MAX, what, ", '-' and '.'")


def check_label_key(key: str) -> str:
    """``[prefix/]name``: prefix a DNS subdomain, name 1-63 alphanumerics, '-', '_', '.'."""
    prefix, sep, name = key.rpartition("/")
    if sep and (not prefix or len(prefix) > DNS_SUBDOMAIN_MAX or not _DNS_SUBDOMAIN.match(prefix)):
        raise ValueError(
            f"label key {key!r}: the prefix {prefix!r} must be a DNS subdomain (e.g. example.com)"
        )
    if len(name) > DNS_LABEL_MAX or not _LABEL_NAME.match(name):
        raise ValueError(
            f"label key {key!r}: the name part must be 1-63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit"
        )
    return key


def check_label_value(key: str, value: str) -> str:
    """Empty, or 1-63 alphanumerics, '-', '_', '.', starting and ending alphanumeric."""
    if value and (len(value) > DNS_LABEL_MAX or not _LABEL_NAME.match(value)):
        raise ValueError(
            f"label {key}={value!r}: a label value must be empty or at most 63 letters, "
            "digits, '-', '_' or '.', starting and ending with a letter or digit"
        )
    return value


# Labels the renderer sets itself (selectors, components) or that prefect's agent uses to
# find its Jobs: a user label with one of these keys would break either.
RESERVED_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/managed-by",
)
RESERVED_LABEL_PREFIX = "prefect.io/"


def check_labels(labels: Mapping[str, str]) -> Dict[str, str]:
    """User labels: valid keys and values, none of them reserved."""
    for key, value in labels.items():
        check_label_key(key)
        check_label_value(key, value)
        if key in RESERVED_LABELS or key.startswith(RESERVED_LABEL_PREFIX):
            raise ValueError(
                f"label {key!r} is set by the bootstrap or by prefect's agent; choose another key"
            )
    return dict(labels)


def check_selector(labels: Mapping[str, str]) -> Dict[str, str]:
    """A nodeSelector: label keys and values to match."""
    for key, value in labels.items():
        check_label_key(key)
        check_label_value(key, value)
    return dict(labels)


def check_secret_key(value: str) -> str:
    """A key inside a Secret's data."""
    if len(value) > DNS_SUBDOMAIN_MAX or not _SECRET_KEY.match(value):
        raise ValueError(f"{value!r} is not a valid Secret key (letters, digits, '-', '_', '.')")
    return value


def parse_quantity(value: str) -> Decimal:
    """The numeric value of a Kubernetes quantity (``500m`` -> 0.5, ``1Gi`` -> 1073741824)."""
    match = _QUANTITY.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a Kubernetes quantity")
    number = Decimal(match.group("number"))
    suffix = match.group("suffix") or ""
    if suffix in _BINARY:
        return number * (Decimal(1024) ** _BINARY[suffix])
    if suffix in _DECIMAL:
        return number.scaleb(_DECIMAL[suffix])
    if suffix:
        return number.scaleb(int(suffix[1:]))
    return number


def check_quantity(value: str, what: str) -> str:
    """A non-negative resource quantity such as ``250m``, ``0.5``, ``512Mi`` or ``2G``."""
    try:
        amount = parse_quantity(value)
    except ValueError:
        examples = "250m, 0.5, 2" if what == "cpu" else "512Mi, 1Gi, 2G"
        raise ValueError(
            f"{value!r} is not a Kubernetes {what} quantity (e.g. {examples})"
        ) from None
    if amount < 0:
        raise ValueError(f"{value!r}: a {what} quantity must not be negative")
    return value


def check_request_within_limit(
    what: str, request: Optional[str], limit: Optional[str]
) -> Optional[str]:
    """Kubernetes refuses a container whose request exceeds its limit; say so first."""
    if request is None or limit is None:
        return None
    if parse_quantity(request) > parse_quantity(limit):
        return f"the {what} request {request} is more than the {what} limit {limit}"
    return None


class ImageReference(NamedTuple):
    name: str
    tag: Optional[str]
    digest: Optional[str]


def split_image_reference(value: str) -> ImageReference:
    """``registry:5000/lume/agent:1.0@sha256:...`` -> name, tag, digest (each may be None)."""
    match = _IMAGE.match(value)
    if not match:
        raise ValueError(
            f"{value!r} is not a container image reference "
            "([REGISTRY[:PORT]/]NAME[:TAG][@DIGEST], lower-case name)"
        )
    return ImageReference(match.group("name"), match.group("tag"), match.group("digest"))


def check_image_reference(value: str) -> str:
    """``[registry[:port]/]path[:tag][@digest]`` with a lower-case path."""
    split_image_reference(value)
    return value
