"""Every field is classified; what gingham would not honour is refused; the doc is current.

See gingham.model.support. The refusal tests go through ``parse_resource`` and
``load_manifests``, the doors ``validate``/``apply`` and every agent use, so a
refused value is named with its document and field path like any other error.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic_core import PydanticUndefined

from gingham.model import (
    InvalidResource,
    ManifestError,
    decode_document,
    load_manifests,
    parse_resource,
    salvage_document,
)
from gingham.model.configdoc import DOC, every_field, main, render, sections
from gingham.model.support import (
    REFUSAL_TEST,
    STATUSES,
    Support,
    support_for,
    table,
    unknown_field_message,
)

from .helpers import doc, problems

ROOT = Path(__file__).resolve().parents[3]

# A value asking for the feature, for every field gingham refuses (in part).
EXAMPLES: dict[tuple[str, str], Any] = {
    ("IPPoolSpec", "ipipMode"): "Always",
    ("IPPoolSpec", "disableBGPExport"): True,
    ("BGPConfigurationSpec", "bindMode"): "NodeIP",
    ("BGPConfigurationSpec", "serviceLoadBalancerIPs"): [{"cidr": "203.0.113.128/26"}],
    ("BGPConfigurationSpec", "nodeMeshMaxRestartTime"): "2m",
    ("BGPConfigurationSpec", "ignoredInterfaces"): ["eth1"],
    ("BGPPassword", "secretKeyRef"): {"name": "s", "key": "k"},
    ("BGPPeerSpec", "sourceAddress"): "None",
    ("BGPPeerSpec", "maxRestartTime"): "2m",
    ("BGPPeerSpec", "numAllowedLocalAsNumbers"): 1,
    ("BGPPeerSpec", "ttlSecurity"): 1,
    ("BGPPeerSpec", "reachableBy"): "192.0.2.254",
    ("BGPPeerSpec", "filters"): ["export-only"],
    ("NodeSpec", "vxlanTunnelMACAddrV6"): "66:2a:1b:00:10:02",
    ("NodeBGPSpec", "ipv4IPIPTunnelAddr"): "198.18.0.1",
    ("WorkloadEndpointSpec", "ipNATs"): [{"internalIP": "198.18.3.4",
                                          "externalIP": "203.0.113.20"}],
    ("FelixConfigurationSpec", "logSeverityFile"): "Info",
    ("FelixConfigurationSpec", "logFilePath"): "/var/log/calico/felix.log",
    ("FelixConfigurationSpec", "logPrefix"): "calico-packet",
    ("FelixConfigurationSpec", "ipv6Support"): False,
    ("FelixConfigurationSpec", "vxlanEnabled"): False,
    ("FelixConfigurationSpec", "vxlanMTU"): 1000,
    ("FelixConfigurationSpec", "vxlanMTUV6"): 1430,
    ("FelixConfigurationSpec", "ipipEnabled"): True,
    ("FelixConfigurationSpec", "ipipMTU"): 1440,
    ("FelixConfigurationSpec", "mtuIfacePattern"): "^eth",
    ("FelixConfigurationSpec", "natPortRange"): "32768:65535",
    ("FelixConfigurationSpec", "chainInsertMode"): "Insert",
    ("FelixConfigurationSpec", "nftablesMode"): "Disabled",
    ("FelixConfigurationSpec", "bpfEnabled"): True,
    ("FelixConfigurationSpec", "wireguardEnabled"): True,
    ("FelixConfigurationSpec", "floatingIPs"): "Enabled",
    ("FelixConfigurationSpec", "removeExternalRoutes"): True,
    ("FelixConfigurationSpec", "deviceRouteProtocol"): 3,
    ("FelixConfigurationSpec", "routeTableRange"): {"min": 1, "max": 250},
    ("FelixConfigurationSpec", "routeRefreshInterval"): "90s",
    ("FelixConfigurationSpec", "interfaceRefreshInterval"): "90s",
    ("FelixConfigurationSpec", "reportingInterval"): "30s",
    ("FelixConfigurationSpec", "endpointReportingEnabled"): True,
    ("FelixConfigurationSpec", "externalNodesCIDRList"): ["192.0.2.0/24"],
}

# Values that a field refused in part still takes.
ACCEPTED_BY_LIMIT: dict[tuple[str, str], tuple[Any, ...]] = {
    ("FelixConfigurationSpec", "vxlanMTU"): (0, 1280, 1450, 8950),
}

# Effect fields no test names yet (each a gap to close, not to grow).
UNTESTED = {
    ("HostEndpointSpec", "profiles"),
    ("HostEndpointSpec", "ports"),
    ("BGPPeerSpec", "keepOriginalNextHop"),
}


def embed(cls: str, alias: str, value: Any) -> tuple[dict[str, Any], str]:
    """A document of the kind holding ``cls`` with ``alias`` set to ``value``, and the
    path an error about that field has."""
    if cls == "IPPoolSpec":
        return doc("IPPool", {"cidr": "198.18.0.0/16", alias: value}), f"spec.{alias}"
    if cls == "BGPConfigurationSpec":
        return doc("BGPConfiguration", {alias: value}, name="default"), f"spec.{alias}"
    if cls == "BGPPeerSpec":
        spec = {"peerIP": "192.0.2.1", "asNumber": 64513, alias: value}
        return doc("BGPPeer", spec), f"spec.{alias}"
    if cls == "BGPPassword":
        spec = {"peerIP": "192.0.2.1", "asNumber": 64513,
                "password": {"file": "/etc/gingham/peer.pass", alias: value}}
        return doc("BGPPeer", spec), f"spec.password.{alias}"
    if cls == "NodeSpec":
        return doc("Node", {alias: value}), f"spec.{alias}"
    if cls == "NodeBGPSpec":
        return doc("Node", {"bgp": {alias: value}}), f"spec.bgp.{alias}"
    if cls == "WorkloadEndpointSpec":
        return doc("WorkloadEndpoint", {alias: value}, namespace="a"), f"spec.{alias}"
    if cls == "FelixConfigurationSpec":
        return doc("FelixConfiguration", {alias: value}, name="default"), f"spec.{alias}"
    if cls == "ProtoPort":
        spec = {"failsafeInboundHostPorts": [{"port": 22, alias: value}]}
        return (doc("FelixConfiguration", spec, name="default"),
                f"spec.failsafeInboundHostPorts[0].{alias}")
    raise AssertionError(f"no document embeds {cls}: teach embed() about it")


def refusing() -> list[tuple[str, str, Support, Any]]:
    """(class, field, entry, default) of every field gingham refuses in whole or part."""
    found = {}
    for row in every_field():
        if row.support is not None and row.support.refuses:
            found[(row.model.__name__, row.alias)] = (row.support, row.default)
    return [(c, a, s, d) for (c, a), (s, d) in sorted(found.items())]


# --- every field classified -----------------------------------------------------


def test_every_field_of_every_kind_is_classified() -> None:
    missing = [f"{r.model.__name__}.{r.alias} ({r.path})" for r in every_field()
               if r.support is None]
    assert not missing, "classify these in gingham/model/support_*.py: " + ", ".join(missing)
    assert {r.support.status for r in every_field() if r.support} <= set(STATUSES)


def test_no_entry_names_a_field_that_does_not_exist() -> None:
    fields = every_field()
    stale = []
    for cls, entries in table().items():
        for alias in entries:
            if not any(alias == r.alias and cls in {c.__name__ for c in r.model.__mro__}
                       for r in fields):
                stale.append(f"{cls}.{alias}")
    assert not stale


def test_referenced_tests_exist() -> None:
    refs = {t for entries in table().values() for s in entries.values() for t in s.tests}
    refs.add(REFUSAL_TEST)
    for ref in sorted(refs):
        path, _, name = ref.partition("::")
        source = ROOT / path
        assert source.is_file(), ref
        assert re.search(rf"^\s*(async )?def {re.escape(name)}\(", source.read_text(),
                         re.MULTILINE), ref


def test_fields_that_take_effect_name_their_tests_or_are_known_gaps() -> None:
    untested = {(r.model.__name__, r.alias) for r in every_field()
                if r.support and r.support.status in ("effect", "reported")
                and not r.support.tests}
    assert untested == UNTESTED


def test_messages_say_what_the_status_says() -> None:
    for cls, alias, entry, _ in refusing():
        if entry.status == "planned":
            assert "not supported yet" in entry.what, (cls, alias)
        elif entry.status == "refused":
            assert "not supported" in entry.what, (cls, alias)


# --- refused where gingham would not honour it; accepted where it does ------------


def test_every_refusable_field_refuses_its_example() -> None:
    fields = refusing()
    assert {(c, a) for c, a, _, _ in fields} == set(EXAMPLES), "EXAMPLES must match the table"
    for cls, alias, entry, _ in fields:
        document, path = embed(cls, alias, EXAMPLES[(cls, alias)])
        found = problems(document)
        assert path in found, (cls, alias, found)
        message = found[path]
        if entry.limit is None:
            assert message.startswith(entry.what), (cls, alias, message)
            assert entry.instead in message
        assert "not supported" in message, (cls, alias, message)


def test_values_that_describe_what_gingham_does_are_accepted() -> None:
    for cls, alias, entry, default in refusing():
        if entry.limit is not None:
            values = ACCEPTED_BY_LIMIT[(cls, alias)]
        else:
            values = entry.accepts if entry.accepts is not None else (default,)
        for value in values:
            if value is PydanticUndefined:
                continue
            document, _ = embed(cls, alias, list(value) if isinstance(value, tuple) else value)
            parse_resource(document)  # raises if refused


def test_a_field_left_unset_is_never_refused() -> None:
    for cls in {c for c, _, _, _ in refusing()}:
        document, _ = embed(cls, "ignored", None)
        spec = document.get("spec", {})
        for part in (spec, spec.get("bgp", {}), spec.get("password", {}),
                     *spec.get("failsafeInboundHostPorts", [])):
            part.pop("ignored", None)
        parse_resource(document)


def test_an_ipip_pool_is_refused_naming_vxlan_and_a_never_one_loads() -> None:
    text = ("apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: old}\n"
            "spec: {cidr: 198.18.0.0/16, ipipMode: %s}\n")
    [pool] = load_manifests(text % "Never")
    assert pool.spec.ipip_mode == "Never"  # type: ignore[attr-defined]
    with pytest.raises(ManifestError) as info:
        load_manifests(text % "CrossSubnet")
    [problem] = info.value.problems
    assert (problem.location, problem.path) == ("doc 1 (IPPool old)", "spec.ipipMode")
    assert "IPIP is not supported by gingham" in problem.message
    assert "vxlanMode: Always or CrossSubnet" in problem.message


def test_exported_defaults_load_and_features_are_refused_together() -> None:
    exported = doc("FelixConfiguration", {"bpfEnabled": False, "wireguardEnabled": False,
                                          "ipipEnabled": False, "floatingIPs": "Disabled",
                                          "vxlanVNI": 4096, "vxlanPort": 4789,
                                          "logSeverityScreen": "Info",
                                          "reportingInterval": "0s"}, name="default")
    parse_resource(exported)
    asking = doc("FelixConfiguration", {"bpfEnabled": True, "wireguardEnabled": True,
                                        "vxlanMTU": 1000}, name="default")
    found = problems(asking)
    assert set(found) == {"spec.bpfEnabled", "spec.wireguardEnabled", "spec.vxlanMTU"}
    assert "eBPF dataplane is not supported" in found["spec.bpfEnabled"]
    assert "WireGuard" in found["spec.wireguardEnabled"]
    assert "not supported" in found["spec.vxlanMTU"] and "1000" in found["spec.vxlanMTU"]


def test_a_stored_document_asking_for_a_refused_feature_is_invalid_to_readers() -> None:
    stored = doc("IPPool", {"cidr": "198.18.0.0/16", "ipipMode": "Always"}, name="old")
    decoded = decode_document(stored)
    assert isinstance(decoded, InvalidResource)
    assert "spec.ipipMode" in decoded.reason and "IPIP" in decoded.reason
    # ... and no reader may salvage it by dropping the field: it is not an unknown one.
    assert salvage_document(stored) is None


# --- Calico fields the model does not have ------------------------------------------


@pytest.mark.parametrize(("field", "fragment"), [
    ("wireguardEnabledV6", "WireGuard"),
    ("bpfLogLevel", "eBPF"),
    ("xdpEnabled", "XDP"),
    ("iptablesBackend", "nftables"),
    ("ipipTunnelMTU", "vxlanMode"),
])
def test_unmodelled_calico_settings_are_refused_saying_why(field: str, fragment: str) -> None:
    message = problems(doc("FelixConfiguration", {field: "x"}, name="default"))[f"spec.{field}"]
    assert message.startswith("unknown field: ") and fragment in message


def test_other_unknown_fields_stay_plain_and_salvage_is_unchanged() -> None:
    assert unknown_field_message("selectr") == "unknown field"
    assert problems(doc("FelixConfiguration", {"selectr": 1}))["spec.selectr"] == "unknown field"
    # A newer writer's field is still dropped by readers that salvage (not policies).
    node = doc("Node", {"wireguardPublicKey": "x", "bgp": {"ipv4Address": "192.0.2.1/24"}})
    salvaged = salvage_document(node)
    assert salvaged is not None and salvaged[1] == ["spec.wireguardPublicKey"]


# --- the document -------------------------------------------------------------------


def test_generated_doc_is_up_to_date() -> None:
    current = (ROOT / DOC).read_text()
    assert current == render(), "run: python -m gingham.model.configdoc --write"


def test_check_mode_fails_on_a_stale_doc(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / DOC).write_text("stale\n")
    assert main(["--check", "--root", str(tmp_path)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert main(["--write", "--root", str(tmp_path)]) == 0
    assert main(["--check", "--root", str(tmp_path)]) == 0


def test_doc_lists_every_field_with_its_status() -> None:
    text = render()
    shown = {(part.title, row.path) for part in sections() for row in part.rows}
    for title, path in shown:
        assert f"| `{path}` |" in text, (title, path)
    # Each refused or planned field appears with the values it still takes.
    assert "| `spec.ipipMode` | **refused** | IPIP is not supported by gingham. Accepted: " \
           "unset or `Never`." in text
    assert support_for(type(parse_resource(doc("IPPool", {"cidr": "198.18.0.0/16"}))),
                       "metadata") is not None
