"""What an IPAM reads about its cluster and host, cached for a moment.

Pools, reservations, configuration, the host's Node labels and block
affinities change rarely and are read on every allocation: each is kept for
``cache_ttl`` seconds. A stale answer costs a lost compare-and-swap or one
more read, never a wrong allocation (every block write re-checks the block's
own affinity, claiming reads afresh). Also here: which pools a request may
use (``_eligible``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gingham.datastore.base import Datastore, KeyValue
from gingham.errors import IPAMError, ValidationError
from gingham.ipam import keys
from gingham.ipam.config import HostConfig
from gingham.ipam.pools import (
    PoolSpec,
    Reservations,
    node_labels_of,
    pool_from_resource,
    reservations_from_resource,
)
from gingham.ipam.unreadable import UnreadableDocument, reason, skipped, warn_once


def _selects_all(pool: PoolSpec) -> bool:
    return pool.node_selector.strip() in ("", "all()")


def _affinity_cidr(kv: KeyValue) -> str | None:
    """The block CIDR an affinity key names (None, logged, if it names none)."""
    text = keys.parse_affinity_key(kv.key)[1]
    try:
        return str(ipaddress.ip_network(text))
    except ValueError:
        warn_once((kv.key, kv.mod_revision, "key"),
                  f"IPAM: skipping {kv.key}: the key names no block CIDR")
        return None


class HostView:
    """The cached reads of ``IPAM`` (which sets these attributes)."""

    ds: Datastore
    host: str
    clock: Callable[[], float]
    cache_ttl: float
    _config_override: HostConfig | None
    _cache: dict[str, tuple[float, Any]]

    def _cached(self, name: str, load: Callable[[], Any]) -> Any:
        now = self.clock()
        hit = self._cache.get(name)
        if hit is not None and now - hit[0] < self.cache_ttl:
            return hit[1]
        value = load()
        self._cache[name] = (now, value)
        return value

    def pools(self) -> list[PoolSpec]:
        """Readable IP pools; one that cannot be read is skipped (logged): allocating
        from fewer pools never hands an address out twice."""
        def load() -> list[PoolSpec]:
            items, _ = self.ds.list(keys.POOLS)
            out = []
            for kv in items:
                try:
                    out.append(pool_from_resource(kv.value))
                except ValidationError as exc:
                    skipped(kv, reason(kv.value, exc), "no address is allocated from it")
            return out
        result: list[PoolSpec] = self._cached("pools", load)
        return result

    def reservations(self) -> Reservations:
        """Reserved ranges; UnreadableDocument if one IPReservation cannot be read.

        Its ranges are unknown, so any address might be reserved: no address is
        handed out (by ``allocate`` or ``assign``) until it is repaired or deleted.
        """
        def load() -> Reservations:
            items, _ = self.ds.list(keys.RESERVATIONS)
            nets = []
            for kv in items:
                try:
                    nets += reservations_from_resource(kv.value)
                except ValidationError as exc:
                    why = reason(kv.value, exc)
                    consequence = "it may reserve any address, so none is handed out " \
                                  "until it is repaired or deleted"
                    skipped(kv, why, consequence)
                    raise UnreadableDocument(kv.key, why, consequence) from None
            return Reservations(nets)
        result: Reservations = self._cached("reservations", load)
        return result

    def config(self) -> HostConfig:
        if self._config_override is not None:
            return self._config_override

        def load() -> HostConfig:
            items, _ = self.ds.list(keys.CONFIG)  # one read for global and per-host
            docs = {kv.key: kv for kv in items}
            cfg, _bad = HostConfig.resolve([docs.get(keys.CONFIG_GLOBAL),
                                            docs.get(keys.host_config_key(self.host))])
            return cfg
        result: HostConfig = self._cached("config", load)
        return result

    def node_labels(self) -> dict[str, str] | None:
        """This host's Node labels ({} without a Node); None if its Node cannot be read."""
        def load() -> dict[str, str] | None:
            kv = self.ds.get(keys.NODES + self.host)
            if kv is None:
                return {}
            labels, why = node_labels_of(kv.value)
            if labels is None:
                skipped(kv, why, "only pools that select every node are used for this host")
            return labels
        result: dict[str, str] | None = self._cached("labels", load)
        return result

    def own_affinities(self, fresh: bool = False) -> dict[str, dict[str, Any]]:
        """CIDR -> affinity document for this host.

        A cached answer is safe: every block write re-checks the block's own
        affinity, and claiming (where the count matters) reads afresh.
        """
        def load() -> dict[str, dict[str, Any]]:
            items, _ = self.ds.list(keys.affinity_prefix(self.host))
            out = {}
            for kv in items:
                # The key, not the document, names the block: the block's own
                # affinity field decides (every write re-checks it), so an
                # unreadable affinity document costs nothing here.
                cidr = _affinity_cidr(kv)
                if cidr is not None:
                    out[cidr] = kv.value
            return out
        if fresh:
            self._cache.pop("affinities", None)
        result: dict[str, dict[str, Any]] = self._cached("affinities", load)
        return result

    # -- pool choice --------------------------------------------------------

    def _eligible(self, version: int, pool_cidrs: Sequence[str] | None,
                  use: str) -> list[PoolSpec]:
        pools = [p for p in self.pools() if p.version == version]
        if pool_cidrs:
            try:
                wanted = [ipaddress.ip_network(c) for c in pool_cidrs]
            except ValueError as exc:
                raise ValidationError(str(exc), "pool_cidrs") from None
            chosen = []
            for w in (w for w in wanted if w.version == version):
                match = [p for p in pools if p.cidr == w]
                if not match:
                    raise ValidationError(f"no IP pool has CIDR {w}", "pool_cidrs")
                if match[0].disabled:
                    raise IPAMError(f"IP pool {w} is disabled")
                if use not in match[0].allowed_uses:
                    raise IPAMError(f"IP pool {w} does not allow {use} use "
                                    f"(allowedUses: {', '.join(match[0].allowed_uses)})")
                chosen.append(match[0])
            return chosen
        enabled = [p for p in pools if not p.disabled and p.assignment_mode != "Manual"
                   and use in p.allowed_uses]
        if all(_selects_all(p) for p in enabled):
            return enabled  # no need to read the Node resource
        labels = self.node_labels()
        return [p for p in enabled if _selects_all(p)
                or (labels is not None and self._matches(p, labels))]

    def _matches(self, pool: PoolSpec, labels: Mapping[str, str]) -> bool:
        try:
            return pool.matches_node(labels)
        except ValidationError as exc:
            # one pool's bad selector costs that pool only
            warn_once((f"IPPool {pool.name or pool.cidr}", 0, str(exc)),
                      f"IPAM: skipping IP pool {pool.name or pool.cidr}: {exc}")
            return False
