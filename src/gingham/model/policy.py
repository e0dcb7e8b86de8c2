"""Policies, tiers and profiles (projectcalico.org/v3)."""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import Field, field_validator, model_validator

from gingham.model.meta import (
    AppliedLabels,
    Bool,
    Float,
    Model,
    ProblemList,
    Resource,
    Str,
    check_resource_name,
)
from gingham.model.rules import Rule
from gingham.model.values import Selector

CALICO_API: Final = "projectcalico.org/v3"
DEFAULT_TIER = "default"
MAX_RULES = 1024  # per direction

# Default of fields computed by a validator when absent (typed Any so the field keeps its type).
COMPUTED: Any = None

PolicyType = Literal["Ingress", "Egress"]


def default_types(ingress: tuple[Rule, ...], egress: tuple[Rule, ...]) -> tuple[PolicyType, ...]:
    """Calico's defaulting of ``types``: Egress alone for egress-only policies,
    both when both kinds of rules are present, otherwise Ingress."""
    if egress and not ingress:
        return ("Egress",)
    if egress:
        return ("Ingress", "Egress")
    return ("Ingress",)


# Readers of the datastore put a policy they must fail closed for here: a tier
# evaluated before every other (see gingham.calc.validity). Nobody may write it.
QUARANTINE_TIER: Final = "gingham-quarantine"


def check_tier_name(value: str) -> str:
    if value == QUARANTINE_TIER:
        raise ValueError(f"tier name {QUARANTINE_TIER!r} is reserved by gingham")
    return check_resource_name(value)


def order_key(order: float | None, name: str) -> tuple[bool, float, str]:
    """Sort key for policies (and tiers): by order, absent order last, ties by name."""
    return (order is None, order if order is not None else 0.0, name)


class PolicySpec(Model):
    """What NetworkPolicy and GlobalNetworkPolicy share."""

    tier: Str = DEFAULT_TIER
    order: Float | None = None
    selector: Selector = "all()"
    service_account_selector: Selector | None = None
    # Computed from the rules when absent (see default_types); never None after validation.
    types: tuple[PolicyType, ...] = Field(default=COMPUTED)
    ingress: tuple[Rule, ...] = ()
    egress: tuple[Rule, ...] = ()

    @field_validator("selector")
    @classmethod
    def _all_when_empty(cls, value: str) -> str:
        # An empty policy selector selects every endpoint in scope, as all() does.
        return value if value.strip() else "all()"

    @field_validator("tier")
    @classmethod
    def _tier_name(cls, value: str) -> str:
        return check_tier_name(value)

    @model_validator(mode="after")
    def _types_and_limits(self) -> PolicySpec:
        problems = ProblemList()
        with problems.part():
            if self.types is None:
                object.__setattr__(self, "types", default_types(self.ingress, self.egress))
            else:
                seen: set[str] = set()
                for i, kind in enumerate(self.types):
                    if kind in seen:
                        problems.add(f"types[{i}]", f"{kind!r} listed more than once")
                    seen.add(kind)
        for direction in ("ingress", "egress"):
            with problems.part():
                count = len(getattr(self, direction))
                if count > MAX_RULES:
                    problems.add(direction, f"{count} rules: at most {MAX_RULES} per direction")
        problems.raise_if_any()
        return self

    def applies_to(self, direction: PolicyType) -> bool:
        return direction in self.types


class NetworkPolicySpec(PolicySpec):
    pass


class GlobalNetworkPolicySpec(PolicySpec):
    namespace_selector: Selector | None = None
    do_not_track: Bool = False
    pre_dnat: Bool = False
    apply_on_forward: Bool = False

    @model_validator(mode="after")
    def _host_policy_flags(self) -> GlobalNetworkPolicySpec:
        problems = ProblemList()
        with problems.part():
            if self.do_not_track and self.pre_dnat:
                problems.add("preDNAT", "doNotTrack and preDNAT cannot both be true")
        with problems.part():
            if (self.do_not_track or self.pre_dnat) and not self.apply_on_forward:
                problems.add("applyOnForward", "must be true when doNotTrack or preDNAT is true")
        with problems.part():
            if self.pre_dnat and self.egress:
                problems.add("egress", "a preDNAT policy cannot have egress rules")
        with problems.part():
            if self.pre_dnat and "Egress" in (self.types or ()):
                problems.add("types", "a preDNAT policy cannot have type Egress")
        problems.raise_if_any()
        return self


class _TieredPolicy(Resource):
    """Policies named either ``<tier>.<name>`` (older Calico) or plainly ``<name>``."""

    @property
    def tier(self) -> str:
        spec: PolicySpec = getattr(self, "spec")  # noqa: B009 - spec is declared in subclasses
        return spec.tier

    @property
    def bare_name(self) -> str:
        """The name without its ``<tier>.`` prefix, whichever way it was written."""
        prefix = self.tier + "."
        return self.name[len(prefix):] if self.name.startswith(prefix) else self.name

    @property
    def sort_key(self) -> tuple[bool, float, str]:
        """Evaluation order inside the tier: ``order`` (absent last), then name."""
        spec: PolicySpec = getattr(self, "spec")  # noqa: B009
        return order_key(spec.order, self.name)

    @property
    def qualified_name(self) -> str:
        """``<tier>.<bare name>`` - one spelling for both ways of writing the name."""
        return f"{self.tier}.{self.bare_name}"


class NetworkPolicy(_TieredPolicy):
    """A namespaced policy: selects workloads of its own namespace only."""

    NAMESPACED = True
    api_version: Literal["projectcalico.org/v3"] = CALICO_API
    kind: Literal["NetworkPolicy"] = "NetworkPolicy"
    spec: NetworkPolicySpec = Field(default_factory=NetworkPolicySpec)


class GlobalNetworkPolicy(_TieredPolicy):
    """A cluster-wide policy: selects workloads of every namespace and host endpoints."""

    api_version: Literal["projectcalico.org/v3"] = CALICO_API
    kind: Literal["GlobalNetworkPolicy"] = "GlobalNetworkPolicy"
    spec: GlobalNetworkPolicySpec = Field(default_factory=GlobalNetworkPolicySpec)


class TierSpec(Model):
    order: Float | None = None
    default_action: Literal["Deny", "Pass"] = "Deny"


class Tier(Resource):
    """An ordered group of policies; lower order is evaluated first, absent order last."""

    api_version: Literal["projectcalico.org/v3"] = CALICO_API
    kind: Literal["Tier"] = "Tier"
    spec: TierSpec = Field(default_factory=TierSpec)

    @model_validator(mode="after")
    def _not_reserved(self) -> Tier:
        if self.metadata.name == QUARANTINE_TIER:
            problems = ProblemList()
            problems.add("metadata.name", f"tier name {QUARANTINE_TIER!r} is reserved by gingham")
            problems.raise_if_any()
        return self

    @property
    def sort_key(self) -> tuple[bool, float, str]:
        return order_key(self.spec.order, self.name)


class ProfileSpec(Model):
    ingress: tuple[Rule, ...] = ()
    egress: tuple[Rule, ...] = ()
    labels_to_apply: AppliedLabels = Field(default_factory=dict)


class Profile(Resource):
    """Rules and labels shared by the endpoints that name this profile."""

    api_version: Literal["projectcalico.org/v3"] = CALICO_API
    kind: Literal["Profile"] = "Profile"
    spec: ProfileSpec = Field(default_factory=ProfileSpec)
