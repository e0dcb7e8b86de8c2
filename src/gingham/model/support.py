"""Which settings gingham honours: every field of every kind, classified.

gingham reads Calico's and Kubernetes' manifests, and a migrating user must
never be left guessing whether a field they set does anything. So every field
the model accepts has an entry here (``support_policy``/``support_network``
hold the tables; a test walks the models and fails on a field without one):

- ``effect``: gingham acts on it; ``tests`` name the tests that show it.
- ``reported``: gingham acts on it where the host can; ``needs`` names the host
  capability (a kernel module, a program). Reporting it per host is agent work.
- ``recorded``: information about the object (bookkeeping, identification),
  kept and shown as written; it is not a setting.
- ``planned``: gingham has the feature but does not read this setting yet. Until
  it does, a value other than what gingham does anyway is refused, saying
  "not supported yet"; flip the entry to ``effect`` when it is wired.
- ``refused``: a feature gingham does not have. A value asking for it is refused
  at validate/apply, naming the field and what to use instead.

For ``planned`` and ``refused`` fields the accepted values are the ones that
describe what gingham does anyway: the field's default unless ``accepts`` says
otherwise (``ipipMode: Never``, ``bpfEnabled: false``, ``vxlanVNI: 4096``), so
an exported Calico manifest carrying defaults still loads. A field left unset
is never refused.

Models call :func:`refuse_unsupported` from a validator; the problems it adds
carry the field's camelCase name, so the usual error path (document, field
path, message) names them like any other validation error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from gingham.model.meta import ProblemList
from gingham.model.support_types import (
    REFUSAL_TEST,
    ROUND_TRIP,
    STATUSES,
    Status,
    Support,
    effect,
    part_of,
    planned,
    recorded,
    refused,
    reported,
)
from gingham.suggest import did_you_mean

# --- the tables -------------------------------------------------------------

# Model class name -> camelCase field name -> Support. Loaded on first use: the
# tables name classes by name, so the models can import this module.
_TABLE: dict[str, dict[str, Support]] = {}


def table() -> Mapping[str, Mapping[str, Support]]:
    if not _TABLE:
        from gingham.model.support_network import NETWORK
        from gingham.model.support_policy import POLICY

        for part in (POLICY, NETWORK):
            for cls, fields in part.items():
                if cls in _TABLE:
                    raise ValueError(f"{cls} classified twice")
                _TABLE[cls] = dict(fields)
    return _TABLE


def support_for(model: type[BaseModel], alias: str) -> Support | None:
    """The entry for ``alias`` of ``model``: its own, else that of a base class."""
    tables = table()
    for cls in model.__mro__:
        entry = tables.get(cls.__name__, {}).get(alias)
        if entry is not None:
            return entry
    return None


def field_default(info: FieldInfo) -> Any:
    """A field's default; a default made by a factory only when it is a plain container
    (a spec's factory would validate an empty spec, which may be refused)."""
    factory = info.default_factory
    if factory is None:
        return info.default
    return factory() if factory in (dict, list, tuple) else PydanticUndefined


# (attribute, camelCase name, entry, default) of the fields a model must check.
_CHECKS: dict[type[BaseModel], tuple[tuple[str, str, Support, Any], ...]] = {}


def _checks(model: type[BaseModel]) -> tuple[tuple[str, str, Support, Any], ...]:
    found = _CHECKS.get(model)
    if found is None:
        rows = []
        for attr, info in model.model_fields.items():
            alias = info.alias or attr
            entry = support_for(model, alias)
            if entry is not None and entry.refuses:
                rows.append((attr, alias, entry, field_default(info)))
        found = _CHECKS[model] = tuple(rows)
    return found


def refusals(model: BaseModel) -> list[tuple[str, str]]:
    """(camelCase field, message) for every explicitly set value gingham refuses."""
    out: list[tuple[str, str]] = []
    fields_set = model.model_fields_set
    for attr, alias, entry, default in _checks(type(model)):
        if attr in fields_set:
            problem = entry.problem(getattr(model, attr), default)
            if problem is not None:
                out.append((alias, problem))
    return out


def refuse_unsupported(model: BaseModel, problems: ProblemList | None = None) -> None:
    """Add the refusals of ``model`` to ``problems``; without one, raise them."""
    own = problems if problems is not None else ProblemList()
    for alias, message in refusals(model):
        own.add(alias, message)
    if problems is None:
        own.raise_if_any()


# --- Calico fields the model does not have ----------------------------------

# An unknown field is refused anyway (the models forbid extra fields); for the
# families of Calico settings of features gingham does not have, say so.
UNMODELLED: Final[tuple[tuple[str, str], ...]] = (
    ("bpf", "the eBPF dataplane is not supported by gingham: it programs nftables "
            "(table inet gingham); remove the field"),
    ("wireguard", "WireGuard encryption is not supported by gingham: traffic between hosts "
                  "is not encrypted; carry it over an encrypted underlay"),
    ("xdp", "XDP acceleration is not supported by gingham; untracked (doNotTrack) policy "
            "is the closest it has"),
    ("iptables", "iptables is not supported by gingham: it programs nftables "
                 "(table inet gingham); remove the field"),
    ("ipsec", "IPsec is not supported by gingham; carry traffic over an encrypted underlay"),
    ("ipip", "IPIP is not supported by gingham; use an IPPool's vxlanMode (Always or "
             "CrossSubnet) instead"),
)


def unknown_field_message(name: str, allowed: Iterable[str] = ()) -> str:
    """The message for a field no model has: ``unknown field``, and why if Calico has
    it, else the closest of the ``allowed`` names (``unknown field; did you mean 'selector'?``)."""
    lowered = name.lower()
    for family, why in UNMODELLED:
        if family in lowered:
            return f"unknown field: {why}"
    return "unknown field" + did_you_mean(name, allowed)


__all__ = [
    "REFUSAL_TEST",
    "ROUND_TRIP",
    "STATUSES",
    "UNMODELLED",
    "Status",
    "Support",
    "effect",
    "field_default",
    "part_of",
    "planned",
    "recorded",
    "refusals",
    "refuse_unsupported",
    "refused",
    "reported",
    "support_for",
    "table",
    "unknown_field_message",
]
