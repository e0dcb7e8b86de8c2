"""Reading nft's output back into :mod:`gingham.dataplane.nft` objects.

``nft -j list`` (JSON) gives chains, sets, elements and counters; rule text
exists only in the text listing (``nft -a list …``), parsed here too. Element
keys and values are normalised as :func:`~gingham.dataplane.nft.normalize_key`
does, so that what was added reads back equal.
"""

from __future__ import annotations

import re
from typing import Any

from gingham.dataplane.nft_objects import (
    Chain,
    Element,
    Map,
    NFTError,
    Rule,
    RuleCounter,
    Set,
    TableSnapshot,
)


def _json_value(v: Any) -> tuple[str, ...]:
    """An element key or value from nft's JSON back into nft text parts."""
    if isinstance(v, dict):
        if "elem" in v:
            return _json_value(v["elem"]["val"])
        if "concat" in v:
            return tuple(p for item in v["concat"] for p in _json_value(item))
        if "prefix" in v:
            return (f"{v['prefix']['addr']}/{v['prefix']['len']}",)
        if "range" in v:
            lo, hi = v["range"]
            return (f"{_json_value(lo)[0]}-{_json_value(hi)[0]}",)
        for verdict in ("jump", "goto"):
            if verdict in v:
                return (f"{verdict} {v[verdict]['target']}",)
        if len(v) == 1:
            (name,) = v
            return (str(name),)
        raise NFTError(f"unexpected element in nft JSON: {v!r}")
    return (str(v),)


def _json_elem_meta(v: Any) -> tuple[str | None, str | None]:
    if isinstance(v, dict) and "elem" in v:
        inner = v["elem"]
        timeout = f"{inner['timeout']}s" if "timeout" in inner else None
        return inner.get("comment"), timeout
    return None, None


def elements_from_json(name: str, obj: dict[str, Any]) -> list[Element]:
    out = []
    for item in obj.get("elem", []):
        if isinstance(item, list):
            key, value = item
            comment, timeout = _json_elem_meta(key)
            out.append(Element(name, _json_value(key), _json_value(value), comment, timeout))
        else:
            comment, timeout = _json_elem_meta(item)
            out.append(Element(name, _json_value(item), None, comment, timeout))
    return [e.normalized() for e in out]


def _type_text(t: Any) -> str:
    return " . ".join(t) if isinstance(t, list) else str(t)


def set_from_json(kind: str, obj: dict[str, Any]) -> Set | Map:
    flags = tuple(obj.get("flags", ()))
    timeout = f"{obj['timeout']}s" if "timeout" in obj else None
    if kind == "map":
        return Map(
            obj["name"],
            type=f"{_type_text(obj['type'])} : {_type_text(obj['map'])}",
            flags=flags,
            timeout=timeout,
            size=obj.get("size"),
            comment=obj.get("comment"),
        )
    return Set(
        obj["name"],
        type=_type_text(obj["type"]),
        flags=flags,
        timeout=timeout,
        size=obj.get("size"),
        comment=obj.get("comment"),
    )


def chain_from_json(obj: dict[str, Any]) -> Chain:
    if "hook" in obj:
        return Chain(
            obj["name"],
            type=obj["type"],
            hook=obj["hook"],
            priority=obj["prio"],
            policy=obj.get("policy"),
        )
    return Chain(obj["name"])


_OPEN_RE = re.compile(r"\{(\s*# handle \d+)?$")
_CHAIN_RE = re.compile(r"^chain (\S+) \{")
_HANDLE_RE = re.compile(r"^(.*?)\s+# handle (\d+)$")
_RULE_COMMENT_RE = re.compile(r'^(.*?)\s*comment "([^"]*)"$')


def rules_by_chain(text: str) -> dict[str, list[Rule]]:
    """Rules of every chain in ``nft -a list table|chain`` output, in order."""
    out: dict[str, list[Rule]] = {}
    depth = 0
    chain: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if _OPEN_RE.search(line):
            depth += 1
            m = _CHAIN_RE.match(line)
            if depth == 2 and m:
                chain = m.group(1)
                out.setdefault(chain, [])
            elif depth == 2:
                chain = None  # a set, map or other block
            continue
        if line == "}":
            depth -= 1
            continue
        if depth != 2 or chain is None:
            continue
        m = _HANDLE_RE.match(line)
        if not m:
            continue  # base chain declaration or chain comment
        body, handle = m.group(1), int(m.group(2))
        cm = _RULE_COMMENT_RE.match(body)
        comment = None
        if cm:
            body, comment = cm.group(1), cm.group(2)
        out[chain].append(Rule(chain, body, comment=comment, handle=handle))
    return out


def rules_from_text(chain: str, text: str) -> list[Rule]:
    """Rules of ``chain`` from ``nft -a list chain`` output."""
    return rules_by_chain(text).get(chain, [])


def counters_from_json(doc: dict[str, Any]) -> list[RuleCounter]:
    out = []
    for item in doc.get("nftables", []):
        rule = item.get("rule")
        if not rule:
            continue
        for expr in rule.get("expr", []):
            if isinstance(expr, dict) and isinstance(expr.get("counter"), dict):
                c = expr["counter"]
                out.append(
                    RuleCounter(
                        rule["chain"], rule["handle"], rule.get("comment"), c["packets"], c["bytes"]
                    )
                )
                break
    return out


def snapshot_from(doc: dict[str, Any], text: str) -> TableSnapshot:
    """A whole table from nft's JSON of its chains, sets and maps and ``nft -a list table``."""
    chains: dict[str, Chain] = {}
    sets: dict[str, Set | Map] = {}
    elements: dict[str, list[Element]] = {}
    for item in doc.get("nftables", []):
        if "chain" in item:
            c = chain_from_json(item["chain"])
            chains[c.name] = c
        for kind in ("set", "map"):
            if kind in item:
                sets[item[kind]["name"]] = set_from_json(kind, item[kind])
                elements[item[kind]["name"]] = elements_from_json(item[kind]["name"], item[kind])
    rules = rules_by_chain(text)
    return TableSnapshot(
        chains=chains,
        rules={name: rules.get(name, []) for name in chains},
        sets=sets,
        elements=elements,
        counters=counters_from_rules(rules),
    )


_COUNTER_RE = re.compile(r"\bcounter packets (\d+) bytes (\d+)\b")


def counters_from_rules(rules: dict[str, list[Rule]]) -> list[RuleCounter]:
    """Counter values from rule text (``counter packets N bytes M``), first counter a rule."""
    out = []
    for chain, chain_rules in rules.items():
        for r in chain_rules:
            m = _COUNTER_RE.search(r.rule)
            if m and r.handle is not None:
                out.append(RuleCounter(chain, r.handle, r.comment, int(m.group(1)),
                                       int(m.group(2))))
    return out
