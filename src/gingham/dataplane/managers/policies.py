"""Policies and profiles -> one chain per direction (no I/O)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from gingham.calc import messages as m
from gingham.calc.messages import PolicyID
from gingham.dataplane import layout
from gingham.dataplane.compiled import Piece
from gingham.dataplane.layout import RuleSpec
from gingham.dataplane.managers.ipsets import IPSetManager
from gingham.dataplane.managers.state import TableState
from gingham.dataplane.policy import SetRef, render_rule
from gingham.errors import ValidationError

log = logging.getLogger(__name__)


class PolicyManager:
    """Policies and profiles -> chains; tells ``on_presence`` when one appears or goes."""

    def __init__(
        self,
        state: TableState,
        ipsets: IPSetManager,
        on_presence: Callable[[set[PolicyID], set[str]], None],
        on_rules: Callable[[PolicyID], None] = lambda _pid: None,
    ) -> None:
        """``on_presence``: a policy or profile appeared or went; ``on_rules``: the
        rules of a policy that was there changed (compiled tiers hold copies)."""
        self._state = state
        self._ipsets = ipsets
        self._on_presence = on_presence
        self._on_rules = on_rules
        self.policies: dict[PolicyID, set[SetRef]] = {}
        self.profiles: dict[str, set[SetRef]] = {}
        self.pieces: dict[tuple[PolicyID, bool], tuple[Piece, ...]] = {}
        """Each policy's rules per direction (inbound True), as parsed and rendered."""

    def _render(
        self, owner: str, chain: str, rules: tuple[m.ParsedRule, ...], in_profile: bool,
        untracked: bool = False,
    ) -> tuple[tuple[Piece, ...], set[SetRef]]:
        pieces: list[Piece] = []
        refs: set[SetRef] = set()
        try:
            for rule in rules:
                specs, rule_refs = render_rule(rule, in_profile, untracked)
                pieces.append((rule, tuple(specs)))
                refs |= rule_refs
        except ValidationError as exc:
            # Fail closed: a policy we cannot express drops what reaches it.
            log.error("cannot render %s (%s): %s; dropping its traffic", owner, chain, exc)
            drop = RuleSpec("counter drop", comment=layout.short_comment(f"render-error:{owner}"))
            return ((None, (drop,)),), set()
        return tuple(pieces), refs

    def _install(
        self,
        owner: str,
        names: tuple[str, str],
        inbound: tuple[m.ParsedRule, ...],
        outbound: tuple[m.ParsedRule, ...],
        old_refs: set[SetRef] | None,
        in_profile: bool,
        untracked: bool = False,
        pid: PolicyID | None = None,
    ) -> set[SetRef]:
        refs: set[SetRef] = set()
        specs = []
        for name, rules, inbound_ in zip(names, (inbound, outbound), (True, False), strict=True):
            pieces, r = self._render(owner, name, rules, in_profile, untracked)
            refs |= r
            if pid is not None:
                self.pieces[(pid, inbound_)] = pieces
            body = [spec for _, rule_specs in pieces for spec in rule_specs]
            specs.append(layout.make_chain(name, body, layout.RANK_POLICY, comment=owner))
        # reference new sets before dropping old references: a set kept by both
        # must not be deleted and recreated in between
        self._ipsets.ref(refs)
        if old_refs is not None:
            self._ipsets.unref(old_refs)
        for spec in specs:
            self._state.set_chain(spec)
        return refs

    def update_policy(self, msg: m.PolicyUpdate) -> None:
        pid = msg.policy_id
        names = (layout.policy_chain(pid, True), layout.policy_chain(pid, False))
        old = self.policies.get(pid)
        before = (self.pieces.get((pid, True)), self.pieces.get((pid, False)))
        self.policies[pid] = self._install(
            f"policy:{pid}", names, msg.inbound, msg.outbound, old, in_profile=False,
            untracked=msg.untracked, pid=pid,
        )
        if old is None:
            self._on_presence({pid}, set())
        elif before != (self.pieces[(pid, True)], self.pieces[(pid, False)]):
            self._on_rules(pid)

    def remove_policy(self, msg: m.PolicyRemove) -> None:
        refs = self.policies.pop(msg.policy_id, None)
        if refs is None:
            return
        self._on_presence({msg.policy_id}, set())
        for inbound in (True, False):
            self.pieces.pop((msg.policy_id, inbound), None)
            self._state.remove_chain(layout.policy_chain(msg.policy_id, inbound))
        self._ipsets.unref(refs)

    def update_profile(self, msg: m.ProfileUpdate) -> None:
        pid = msg.profile_id
        names = (layout.profile_chain(pid, True), layout.profile_chain(pid, False))
        old = self.profiles.get(pid)
        self.profiles[pid] = self._install(
            f"profile:{pid}", names, msg.inbound, msg.outbound, old, in_profile=True
        )
        if old is None:
            self._on_presence(set(), {pid})

    def remove_profile(self, msg: m.ProfileRemove) -> None:
        refs = self.profiles.pop(msg.profile_id, None)
        if refs is None:
            return
        self._on_presence(set(), {msg.profile_id})
        for inbound in (True, False):
            self._state.remove_chain(layout.profile_chain(msg.profile_id, inbound))
        self._ipsets.unref(refs)
