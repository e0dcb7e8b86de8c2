"""Rule ids as the dataplane writes them (nft comments, log prefixes), read back.

The calculation graph names every rule ``<owner>:<i|e><index>`` where the
owner is ``policy:<tier>/<namespace>/<name>`` (``policy:<tier>/<name>`` for
a global policy) or ``profile:<name>``. The renderer adds its own markers for
the drops it makes itself: ``tier-end:<tier>`` (a tier's default Deny),
``no-profile-allowed`` (fell through every profile), ``missing-policy:…``,
``missing-profile:…``, ``anti-spoof``, ``unknown-workload``,
``endpoint-to-host``, ``failsafe-in``/``failsafe-out``, ``vxlan-from-workload``,
``ipip-from-workload``. Chain markers
(``v:<hash>``) count packets entering a chain and are not rules.

Comments longer than nft's 128 characters are shortened with a hash
(:func:`gingham.dataplane.layout.short_comment`); :func:`resolver` maps those
back using the rule ids the model says exist.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from gingham.policy.world import World

_RULE_RE: Final = re.compile(r"^(?P<owner>(policy|profile):.+):(?P<dir>[ie])(?P<index>\d+)$")
MARKERS: Final = frozenset({
    "no-profile-allowed", "anti-spoof", "unknown-workload", "endpoint-to-host",
    "failsafe-in", "failsafe-out", "vxlan-from-workload", "ipip-from-workload",
})  # fmt: skip
LOG_ID_MAX: Final = 117  # nft's 127-character log prefix minus "gingham " and ": "
DROP_MARKERS: Final = frozenset({"no-profile-allowed", "anti-spoof", "unknown-workload",
                                 "endpoint-to-host", "vxlan-from-workload",
                                 "ipip-from-workload"})


@dataclass(frozen=True, slots=True)
class RuleRef:
    """What a rule id names.

    ``kind``: ``policy``, ``profile``, ``tier-end``, ``missing-policy``,
    ``missing-profile``, one of :data:`MARKERS`, or ``other``.
    """

    text: str
    kind: str
    owner: str | None = None  # "tier/ns/name", "tier/name" or the profile name
    tier: str | None = None
    direction: str | None = None  # "ingress" | "egress"
    index: int | None = None

    @property
    def is_drop(self) -> bool:
        return self.kind in ("tier-end", "missing-policy", "missing-profile") or (
            self.kind in DROP_MARKERS)

    def describe(self) -> str:
        if self.kind in ("policy", "profile"):
            return f"{self.kind} {self.owner} {self.direction} rule {self.index}"
        if self.kind == "tier-end":
            return f"end of tier {self.tier} (default action Deny)"
        return self.text


def parse_rule_id(text: str) -> RuleRef:
    m = _RULE_RE.match(text)
    if m:
        owner = m.group("owner")
        kind, _, name = owner.partition(":")
        direction = "ingress" if m.group("dir") == "i" else "egress"
        tier = name.split("/", 1)[0] if kind == "policy" else None
        return RuleRef(text, kind, name, tier, direction, int(m.group("index")))
    if text.startswith("tier-end:"):
        return RuleRef(text, "tier-end", tier=text[len("tier-end:"):])
    for prefix in ("missing-policy:", "missing-profile:"):
        if text.startswith(prefix):
            return RuleRef(text, prefix[:-1], owner=text[len(prefix):])
    if text in MARKERS:
        return RuleRef(text, text)
    return RuleRef(text, "other")


def known_rule_ids(world: World) -> list[str]:
    """Every rule id the model's policies and profiles give rise to."""
    from gingham.policy.explain import policy_owner

    out = []
    for p in world.policies:
        owner = policy_owner(p)
        out += [f"{owner}:i{i}" for i in range(len(p.spec.ingress))]
        out += [f"{owner}:e{i}" for i in range(len(p.spec.egress))]
    for name, prof in world.profiles.items():
        out += [f"profile:{name}:i{i}" for i in range(len(prof.spec.ingress))]
        out += [f"profile:{name}:e{i}" for i in range(len(prof.spec.egress))]
    return out


def resolver(ids: Iterable[str]) -> Callable[[str], str]:
    """Comment or log prefix (possibly shortened) -> full rule id, where the model knows it."""
    from gingham.dataplane.layout import short_comment

    table: dict[str, str] = {}
    for i in ids:
        short = short_comment(i)
        table[short] = i
        table.setdefault(short[:LOG_ID_MAX], i)  # the log prefix cuts it further
    return lambda comment: table.get(comment, comment)


def rule_action(world: World, ref: RuleRef) -> str | None:
    """The action of the rule ``ref`` names, from the model (None if unknown)."""
    from gingham.policy.explain import policy_label

    if ref.kind == "policy":
        for p in world.policies:
            if policy_label(p) == ref.owner:
                rules = p.spec.ingress if ref.direction == "ingress" else p.spec.egress
                return rules[ref.index].action if ref.index is not None and ref.index < len(
                    rules) else None
        return None
    if ref.kind == "profile" and ref.owner is not None and ref.owner in world.profiles:
        prof = world.profiles[ref.owner]
        rules = prof.spec.ingress if ref.direction == "ingress" else prof.spec.egress
        return rules[ref.index].action if ref.index is not None and ref.index < len(rules) else None
    if ref.is_drop:
        return "Deny"
    return None
