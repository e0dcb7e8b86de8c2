"""One base chain in a table of its own, whose rules are rewritten only when they change.

NAT outgoing (``nat.py``) and service loop prevention (``service_loop.py``) are
each a short list of rules in one base chain. :class:`ChainTable` holds the
rules wanted and programs them through the nft driver, one transaction per
change. Each rule carries a comment naming its content (``<prefix>:<hash>``),
so the chain is compared with what is wanted by reading its comments back:
unchanged rules are never rewritten, also not after a restart.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from gingham.dataplane import nft
from gingham.dataplane.nft_objects import NFTError


class ChainTable:
    """The rules of base chain ``chain`` (``hook``, ``type``, ``priority``) in the table of
    ``driver``. ``drop_when_empty``: no rules wanted means no table (else an empty chain,
    which NAT needs to exist)."""

    def __init__(self, driver: nft.NFTInterface, chain: str, *, type: str, hook: str,
                 priority: str, comment_prefix: str, drop_when_empty: bool = False) -> None:
        self.driver = driver
        self.chain = chain
        self._base = {"type": type, "hook": hook, "priority": priority}
        self._prefix = comment_prefix
        self._drop_when_empty = drop_when_empty
        self._desired: tuple[str, ...] | None = None  # None: nothing asked for yet
        # What the kernel holds: None no chain, a tuple the rules; unknown: read it.
        self._programmed: tuple[str, ...] | None = None
        self._known = False

    def want(self, rules: Iterable[str]) -> None:
        self._desired = tuple(rules)

    def apply(self) -> bool:
        """Program what changed; True when the kernel was changed. Raises on failure,
        after which the next call reads the kernel again."""
        if self._desired is None:
            return False
        wanted = None if self._drop_when_empty and not self._desired else self._desired
        if not self._known:
            self._programmed, self._known = self._read(), True
        if self._programmed == wanted:
            return False
        try:
            if wanted is None:
                self.driver.delete_table()
            else:
                self.driver.run(self._transaction(wanted))
        except Exception:
            self._known = False
            raise
        self._programmed = wanted
        return True

    def _transaction(self, rules: tuple[str, ...]) -> nft.Transaction:
        tx = nft.Transaction()
        tx.add(nft.Table())
        tx.add(nft.Chain(self.chain, policy="accept", **self._base))
        tx.flush(nft.Chain(self.chain))
        for rule in rules:
            tx.add(nft.Rule(self.chain, rule, comment=self._comment(rule)))
        return tx

    def _comment(self, rule: str) -> str:
        return f"{self._prefix}:" + hashlib.sha256(rule.encode()).hexdigest()[:16]

    def _read(self) -> tuple[str, ...] | None:
        """The rules in the kernel, as far as their comments tell (None: no chain)."""
        try:
            rules = self.driver.list_rules(self.chain)
        except NFTError as exc:
            if exc.kind == "not-found":
                return None
            raise
        by_comment = {self._comment(r): r for r in self._desired or ()}
        return tuple(by_comment.get(r.comment or "", f"?{r.handle}") for r in rules)


__all__ = ["ChainTable"]
