"""How ``gingham get`` shows resources: tables, list documents, names.

Lists come out as calicoctl writes them: one document of kind ``<Kind>List``
(``List`` when kinds are mixed) with ``metadata.resourceVersion`` the store
revision read at and the resources as ``items``; a single named resource is a
single document. A stored value that is invalid is never dropped silently: in
YAML it follows as comments (the output still loads and applies), in JSON as
an extra ``invalid`` field, in tables as the stored text under the table.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import click

from gingham.cli.common import dump_json, print_table
from gingham.cli.refs import name_of

# Extra columns per kind: (header, dotted path in the manifest dict). The first
# list is always shown, the second only with -o wide.
_COLUMNS: dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]] = {
    "GlobalNetworkPolicy": (
        [("TIER", "spec.tier"), ("ORDER", "spec.order")],
        [("SELECTOR", "spec.selector"), ("TYPES", "spec.types")],
    ),
    "NetworkPolicy": (
        [("TIER", "spec.tier"), ("ORDER", "spec.order")],
        [("SELECTOR", "spec.selector"), ("TYPES", "spec.types")],
    ),
    "KubernetesNetworkPolicy": (
        [("POD-SELECTOR", "spec.podSelector")],
        [("TYPES", "spec.policyTypes")],
    ),
    "Tier": ([("ORDER", "spec.order")], [("DEFAULT-ACTION", "spec.defaultAction")]),
    "IPPool": (
        [("CIDR", "spec.cidr"), ("SELECTOR", "spec.nodeSelector")],
        [
            ("BLOCK", "spec.blockSize"),
            ("VXLAN", "spec.vxlanMode"),
            ("NAT", "spec.natOutgoing"),
            ("DISABLED", "spec.disabled"),
        ],
    ),
    "IPReservation": ([("CIDRS", "spec.reservedCIDRs")], []),
    "WorkloadEndpoint": (
        [("NODE", "spec.node"), ("NETWORKS", "spec.ipNetworks")],
        [("INTERFACE", "spec.interfaceName"), ("PROFILES", "spec.profiles")],
    ),
    "HostEndpoint": (
        [("NODE", "spec.node"), ("INTERFACE", "spec.interfaceName")],
        [("IPS", "spec.expectedIPs"), ("PROFILES", "spec.profiles")],
    ),
    "BGPPeer": (
        [("PEERIP", "spec.peerIP"), ("NODE", "spec.node"), ("ASN", "spec.asNumber")],
        [("SELECTOR", "spec.peerSelector")],
    ),
    "BGPConfiguration": (
        [("LOGSEVERITY", "spec.logSeverityScreen"), ("MESHENABLED", "spec.nodeToNodeMeshEnabled")],
        [("ASNUMBER", "spec.asNumber")],
    ),
    "GlobalNetworkSet": ([], [("NETS", "spec.nets")]),
    "NetworkSet": ([], [("NETS", "spec.nets")]),
    "Node": ([], [("ADDRESSES", "spec.addresses")]),
}


def _lookup(resource: Any, path: str) -> Any:
    """The value at a camelCase path, read from the typed resource so defaults show."""
    from pydantic import BaseModel

    value: Any = resource
    for part in path.split("."):
        value = getattr(value, _snake(part), None)
        if value is None:
            return None
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_unset=True)
    return value


def _snake(name: str) -> str:
    """``nodeSelector`` -> ``node_selector``, ``peerIP`` -> ``peer_ip``, ``reservedCIDRs`` ->
    ``reserved_cidrs``: the model's attribute for a manifest field."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list | tuple):
        return ",".join(_cell(v) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k}={_cell(v)}" for k, v in value.items()) or "{}"
    return str(value)


def printable(text: str) -> str:
    """Stored text fit for a terminal: control characters (escape sequences!) as escapes."""
    return "".join(
        c if c.isprintable() or c in "\n\t" else c.encode("unicode_escape").decode("ascii")
        for c in text
    )


def table(info: Any, found: Sequence[Any], wide: bool, with_namespace: bool) -> None:
    """One kind's table; its invalid stored values follow, as stored."""
    from gingham.datastore.resources import InvalidStoredResource

    resources = [r for r in found if not isinstance(r, InvalidStoredResource)]
    basic, more = _COLUMNS.get(info.name, ([], []))
    columns = basic + (more if wide else [])
    headers = (["NAMESPACE"] if with_namespace else []) + ["NAME"] + [h for h, _ in columns]
    if wide:
        headers.append("LABELS")
    rows = []
    for r in resources:
        row = ([r.namespace or ""] if with_namespace else []) + [r.metadata.name]
        row += [_cell(_lookup(r, path)) for _, path in columns]
        if wide:
            row.append(_cell(r.metadata.labels) if r.metadata.labels else "")
        rows.append(row)
    print_table(headers, rows)
    for bad in found:
        if isinstance(bad, InvalidStoredResource):
            click.echo(f"\n{bad.key} (invalid, shown as stored):")
            click.echo(printable(bad.raw))


def names(found: Sequence[Any]) -> None:
    from gingham.datastore.resources import InvalidStoredResource

    for r in found:
        name = r.name if isinstance(r, InvalidStoredResource) else r.metadata.name
        click.echo(name_of(info_of(r), name, r.namespace))


def info_of(found: Any) -> Any:
    """The kind of a stored resource, valid or not."""
    from gingham.datastore.resources import InvalidStoredResource
    from gingham.model import kind_info

    if isinstance(found, InvalidStoredResource):
        return found.info
    return kind_info(found.kind, found.api_version)


def _invalid_entry(bad: Any) -> dict[str, Any]:
    return {"key": bad.key, "reason": bad.reason, "raw": bad.raw}


def list_document(found: Sequence[Any], kinds: Sequence[Any], revision: int) -> dict[str, Any]:
    """calicoctl's list: ``<Kind>List`` for one kind (``List``, ``v1`` for several)."""
    from gingham.datastore.resources import InvalidStoredResource
    from gingham.model import to_dict

    if len(kinds) == 1:
        api_version, kind = kinds[0].api_version, f"{kinds[0].kind}List"
    else:
        api_version, kind = "v1", "List"
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"resourceVersion": str(revision)},
        "items": [to_dict(r) for r in found if not isinstance(r, InvalidStoredResource)],
    }


def as_json(found: Sequence[Any], kinds: Sequence[Any], revision: int | None) -> None:
    """One document (``revision`` None: a single named resource) or the list document."""
    from gingham.datastore.resources import InvalidStoredResource
    from gingham.model import to_dict

    invalid = [r for r in found if isinstance(r, InvalidStoredResource)]
    if revision is None:
        [one] = found
        click.echo(dump_json(_invalid_entry(one) if invalid else to_dict(one)))
        return
    doc = list_document(found, kinds, revision)
    if invalid:
        doc["invalid"] = [_invalid_entry(b) for b in invalid]
    click.echo(dump_json(doc))


def as_yaml(found: Sequence[Any], kinds: Sequence[Any], revision: int | None) -> None:
    """As ``as_json``; invalid stored values as comments after the document."""
    from gingham.datastore.resources import InvalidStoredResource
    from gingham.model import dump_yaml

    valid = [r for r in found if not isinstance(r, InvalidStoredResource)]
    if revision is None:
        if valid:
            click.echo(dump_yaml(valid), nl=False)
    else:
        click.echo(dump_document(list_document(found, kinds, revision)), nl=False)
    for bad in found:
        if isinstance(bad, InvalidStoredResource):
            reason = printable(bad.reason).replace("\n", " ")
            click.echo(f"# {printable(bad.key)}: invalid, shown as stored ({reason}):")
            lines = printable(bad.raw).splitlines() or [""]
            click.echo("\n".join(f"#   {line}" for line in lines))


def dump_document(doc: Any, *, sort_keys: bool = False, explicit_start: bool = True) -> str:
    """One YAML document, in the dialect ``gingham.model`` reads back equal."""
    import yaml

    from gingham.model.yamlio import Dumper

    text: str = yaml.dump(
        doc,
        Dumper=Dumper,
        sort_keys=sort_keys,
        default_flow_style=False,
        allow_unicode=True,
        explicit_start=explicit_start,
    )
    return text
