"""Policy rules: action, protocol, ICMP, IP version, and the source/destination match."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, field_validator, model_validator

from gingham.model.meta import Int, Model, ProblemList, Str
from gingham.model.values import (
    CIDR,
    PORT_PROTOCOLS,
    Port,
    Protocol,
    Selector,
    protocol_number,
)

Action = Literal["Allow", "Deny", "Log", "Pass"]

_ICMP_PROTOCOLS = {1: 4, 58: 6}  # protocol number -> the IP version it belongs to


def _empty_to_none(value: str | None) -> str | None:
    # Calico treats an empty selector in a rule as "no selector".
    return None if value is not None and not value.strip() else value


class ServiceAccountMatch(Model):
    """Match endpoints by service account: by name and/or by the account's labels."""

    names: tuple[Str, ...] = ()
    selector: Selector | None = None

    @field_validator("selector")
    @classmethod
    def _empty_selector(cls, value: str | None) -> str | None:
        return _empty_to_none(value)


class ServiceMatch(Model):
    """Match the endpoints of a Kubernetes Service (Calico's ``services`` field)."""

    name: Str
    namespace: Str | None = None


class EntityRule(Model):
    """One side of a rule. Every field present must match (logical AND)."""

    nets: tuple[CIDR, ...] = ()
    not_nets: tuple[CIDR, ...] = ()
    selector: Selector | None = None
    not_selector: Selector | None = None
    namespace_selector: Selector | None = None
    ports: tuple[Port, ...] = ()
    not_ports: tuple[Port, ...] = ()
    service_accounts: ServiceAccountMatch | None = None
    services: ServiceMatch | None = None

    @field_validator("selector", "not_selector", "namespace_selector")
    @classmethod
    def _empty_selector(cls, value: str | None) -> str | None:
        return _empty_to_none(value)

    @model_validator(mode="after")
    def _services_alone(self) -> EntityRule:
        if self.services is not None:
            others = [
                name for name in ("nets", "not_nets", "selector", "not_selector",
                                  "namespace_selector", "service_accounts")
                if getattr(self, name)
            ]
            if others:
                problems = ProblemList()
                problems.add("services", "cannot be combined with " + ", ".join(others))
                problems.raise_if_any()
        return self

    def has_ports(self) -> bool:
        return bool(self.ports or self.not_ports)

    def all_nets(self) -> tuple[str, ...]:
        return self.nets + self.not_nets


class ICMPFields(Model):
    """ICMP type (0-254) and code (0-255); a code needs a type."""

    type: Int | None = None
    code: Int | None = None

    @model_validator(mode="after")
    def _ranges(self) -> ICMPFields:
        problems = ProblemList()
        if self.type is not None and not 0 <= self.type <= 254:
            problems.add("type", f"ICMP type {self.type} out of range 0-254")
        if self.code is not None:
            if not 0 <= self.code <= 255:
                problems.add("code", f"ICMP code {self.code} out of range 0-255")
            if self.type is None:
                problems.add("code", "an ICMP code needs an ICMP type")
        problems.raise_if_any()
        return self


class RuleMetadata(Model):
    annotations: dict[Str, Str] = Field(default_factory=dict)


class Rule(Model):
    """A policy rule: if every match holds, take ``action``."""

    action: Action
    ip_version: Literal[4, 6] | None = None
    protocol: Protocol | None = None
    not_protocol: Protocol | None = None
    icmp: ICMPFields | None = None
    not_icmp: ICMPFields | None = None
    source: EntityRule = Field(default_factory=EntityRule)
    destination: EntityRule = Field(default_factory=EntityRule)
    metadata: RuleMetadata | None = None

    @field_validator("ip_version", mode="before")
    @classmethod
    def _ip_version(cls, value: object) -> object:
        if value is not None and (type(value) is not int or value not in (4, 6)):
            raise ValueError(f"ipVersion must be 4 or 6, got {value!r}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Rule:
        problems = ProblemList()
        for side in ("source", "destination"):
            with problems.part():
                entity: EntityRule = getattr(self, side)
                number = self._protocol_number()
                for field, alias in (("ports", "ports"), ("not_ports", "notPorts")):
                    if getattr(entity, field) and number not in PORT_PROTOCOLS:
                        problems.add(f"{side}.{alias}", "ports need protocol TCP, UDP or SCTP")
            with problems.part():
                entity = getattr(self, side)
                if self.ip_version is not None:
                    for field, alias in (("nets", "nets"), ("not_nets", "notNets")):
                        for i, net in enumerate(getattr(entity, field)):
                            if ipaddress.ip_network(net).version != self.ip_version:
                                problems.add(
                                    f"{side}.{alias}[{i}]",
                                    f"{net} is not an IPv{self.ip_version} network "
                                    f"(ipVersion is {self.ip_version})",
                                )
        for field, alias in (("icmp", "icmp"), ("not_icmp", "notICMP")):
            with problems.part():
                if getattr(self, field) is not None and \
                        self._protocol_number() not in _ICMP_PROTOCOLS:
                    problems.add(alias, "ICMP matches need protocol ICMP or ICMPv6")
        with problems.part():
            number = self._protocol_number()
            if number in _ICMP_PROTOCOLS and self.ip_version is not None:
                wanted = _ICMP_PROTOCOLS[number]
                if wanted != self.ip_version:
                    problems.add("protocol", f"{self.protocol} does not go with ipVersion "
                                             f"{self.ip_version}")
        problems.raise_if_any()
        return self

    def _protocol_number(self) -> int | None:
        return None if self.protocol is None else protocol_number(self.protocol)
