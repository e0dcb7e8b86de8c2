"""Base classes shared by every kind: the pydantic configuration, metadata, problems.

Attributes are snake_case; YAML and JSON use Calico's camelCase, which keeps
acronyms in capitals (``peerIP``, ``vxlanVNI``, ``ipNATs``, ``notICMP``). The
alias generator below knows those acronyms, so a field only needs an explicit
alias when its name is a Python keyword (``from``, ``except``).

Cross-field checks raise :class:`Problems`, a ``ValueError`` that carries
paths relative to the model that raised it; the translation from pydantic's
errors (in ``registry``) joins them to the model's own path.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Self

from pydantic import (
    AfterValidator,
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PlainSerializer,
    Strict,
    StrictBool,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError

from gingham.errors import ValidationError
from gingham.model.partial import independent_check, with_cross_field_problems
from gingham.selector.labels import SUBDOMAIN_RE, selector_key_problem

# Re-exported: the rule for labels is the selector package's, one for both.
from gingham.selector.labels import label_key_problem as label_key_problem
from gingham.selector.labels import label_value_problem as label_value_problem

# Word -> spelling inside a camelCase name (never applied to the first word).
_ACRONYMS: dict[str, str] = {
    "ip": "IP",
    "ips": "IPs",
    "id": "ID",
    "vni": "VNI",
    "mtu": "MTU",
    "vxlan": "VXLAN",
    "ipip": "IPIP",
    "cidr": "CIDR",
    "cidrs": "CIDRs",
    "nat": "NAT",
    "nats": "NATs",
    "dnat": "DNAT",
    "icmp": "ICMP",
    "bgp": "BGP",
    "mac": "MAC",
    "dns": "DNS",
    "xdp": "XDP",
    "bpf": "BPF",
    "ipv4": "IPv4",
    "ipv6": "IPv6",
    "v6": "V6",
    "ttl": "TTL",
    "url": "URL",
}


def camel(name: str) -> str:
    """``not_icmp`` -> ``notICMP``; ``ipv4_vxlan_tunnel_addr`` -> ``ipv4VXLANTunnelAddr``."""
    first, *rest = name.rstrip("_").split("_")
    return first + "".join(_ACRONYMS.get(w, w[:1].upper() + w[1:]) for w in rest)


class Model(BaseModel):
    """Every gingham model: camelCase aliases, unknown fields rejected, frozen."""

    model_config = ConfigDict(
        alias_generator=camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        defer_build=True,
    )

    @model_validator(mode="wrap")
    @classmethod
    def _one_phase(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        # Runs inside the after-validators of every subclass: when a field fails, they
        # would not run at all; see gingham.model.partial.
        try:
            return handler(data)
        except PydanticValidationError as exc:
            raise with_cross_field_problems(cls, data, handler, exc) from None


class Problems(ValueError):
    """Several field problems found by one cross-field check.

    ``items`` holds ``(relative path, message)``; an empty path means the model itself.
    """

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self.items = list(items)
        super().__init__("; ".join(f"{p}: {m}" if p else m for p, m in self.items))


class ProblemList:
    """Collects problems in a validator, then raises them all at once."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, path: str, message: str) -> None:
        self.items.append((path, message))

    def part(self) -> AbstractContextManager[None]:
        """``with problems.part():`` around one check of several that reads fields of its
        own: when other fields failed to parse, it still runs (gingham.model.partial)."""
        return independent_check()

    def raise_if_any(self) -> None:
        if self.items:
            raise Problems(self.items)


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the input: where (document), which field, what."""

    location: str  # "doc 2 (GlobalNetworkPolicy allow-dns)", "line 4 column 3" or ""
    path: str  # "spec.ingress[0].destination.ports[1]" or ""
    message: str

    def __str__(self) -> str:
        return ": ".join(part for part in (self.location, self.path, self.message) if part)


class ManifestError(ValidationError):
    """Every problem found in one input; ``problems`` lists them individually."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        locations = {p.location for p in self.problems}
        location = locations.pop() if len(locations) == 1 else ""
        lines = [": ".join(x for x in (p.path, p.message) if x) if location else str(p)
                 for p in self.problems]
        if len(lines) == 1:
            message = lines[0]
        else:
            message = f"{len(lines)} problems:\n  " + "\n  ".join(lines)
        super().__init__(message, location)


# --- scalar types: strict, so YAML's types are kept (no "yes" -> True, "80" -> 80) ---

def _compact_number(value: float) -> float | int:
    return int(value) if value.is_integer() else value


Str = StrictStr
Int = StrictInt
Bool = StrictBool
# Calico's float64 fields (order). Written back as an int when integral: 100, not 100.0.
Float = Annotated[
    float,
    Strict(),
    AllowInfNan(False),
    PlainSerializer(_compact_number, when_used="json"),
]

_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"


def check_resource_name(name: str) -> str:
    if not name:
        raise ValueError("name must not be empty")
    if len(name) > 253 or not SUBDOMAIN_RE.match(name):
        raise ValueError(
            f"invalid name {name!r}: lower-case letters, digits, '-' and '.', "
            "starting and ending with a letter or digit, at most 253 characters"
        )
    return name


def check_namespace_name(name: str) -> str:
    if len(name) > 63 or not re.match(rf"^{_DNS_LABEL}$", name):
        raise ValueError(
            f"invalid namespace {name!r}: lower-case letters, digits and '-', at most 63"
        )
    return name


def _labels_checked_by(key_problem: Callable[[str], str | None]
                       ) -> Callable[[dict[str, str]], dict[str, str]]:
    def check(labels: dict[str, str]) -> dict[str, str]:
        problems = ProblemList()
        for key, value in labels.items():
            for problem in (key_problem(key), label_value_problem(value)):
                if problem:
                    problems.add(_dict_key_path(key), problem)
        problems.raise_if_any()
        return labels

    return check


def _dict_key_path(key: str) -> str:
    return f"[{key!r}]"


Labels = Annotated[dict[StrictStr, StrictStr],
                   AfterValidator(_labels_checked_by(label_key_problem))]
# Labels a profile applies to endpoints: a namespace's profile carries its labels as
# pcns. copies, valid wherever the originals are (gingham.selector.labels).
AppliedLabels = Annotated[dict[StrictStr, StrictStr],
                          AfterValidator(_labels_checked_by(selector_key_problem))]


class ObjectMeta(Model):
    """The metadata every resource carries. Server-set fields are kept but never required."""

    name: Str
    namespace: Str | None = None
    labels: Labels = Field(default_factory=dict)
    annotations: dict[Str, Str] = Field(default_factory=dict)
    resource_version: Str | None = None
    uid: Str | None = None
    creation_timestamp: Str | None = None
    generation: Int | None = None
    # Written by Kubernetes API servers; accepted so `kubectl get -o yaml` output loads.
    generate_name: Str | None = None
    deletion_timestamp: Str | None = None
    deletion_grace_period_seconds: Int | None = None
    finalizers: tuple[Str, ...] = ()
    owner_references: tuple[dict[Str, Any], ...] = ()
    managed_fields: tuple[dict[Str, Any], ...] = ()
    self_link: Str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_resource_name(value)

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str | None) -> str | None:
        return None if value is None else check_namespace_name(value)


class Resource(Model):
    """Base of every kind. Subclasses pin ``api_version`` and ``kind`` with Literals."""

    api_version: str
    kind: str
    metadata: ObjectMeta

    # Filled in by each subclass; read through gingham.model.registry.kind_info.
    NAMESPACED: ClassVar[bool] = False

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, meta: ObjectMeta) -> ObjectMeta:
        problems = ProblemList()
        if meta.namespace is not None and not cls.NAMESPACED:
            problems.add("namespace", f"{cls.__name__} is cluster-scoped: no namespace allowed")
        problems.raise_if_any()
        return meta

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str | None:
        return self.metadata.namespace


def dump_hint(value: Any) -> str:
    """A short, safe rendering of a bad input value for error messages."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
