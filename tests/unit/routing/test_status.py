"""Parsing `birdc show protocols` (text captured from BIRD 2.0.12)."""

from __future__ import annotations

from pathlib import Path

from gingham.routing.status import parse_protocols, peer_from_name

CAPTURED = (Path(__file__).parent / "data" / "birdc_show_protocols.txt").read_text()


def test_parse_captured_output() -> None:
    rows = parse_protocols(CAPTURED)
    assert [(r.peer, r.type, r.state, r.since, r.info) for r in rows] == [
        ("192.0.2.12", "node-to-node mesh", "up", "06:19:39.930", "Established"),
        ("192.0.2.99", "global", "start", "06:19:38.964", "Connect       Socket: No route to host"),
        (
            "192.0.2.11",
            "node-to-node mesh",
            "start",
            "06:19:46.587",
            "Active        Received: Administrative shutdown",
        ),
        ("2001:db8:ffff::12", "node specific", "down", "2026-11-25", ""),
        ("192.0.2.13", "route reflector client", "up", "06:19:39.930", "Established"),
        ("192.0.2.14", "route reflector", "up", "06:19:39.930", "Established"),
    ]
    assert [r.established for r in rows] == [True, False, False, False, True, True]


def test_peer_from_name() -> None:
    assert peer_from_name("Mesh_10_0_0_1") == ("node-to-node mesh", "10.0.0.1")
    assert peer_from_name("Global_2001_db8__1") == ("global", "2001:db8::1")
    assert peer_from_name("Mesh_") is None
    assert peer_from_name("gingham_kernel4") is None
    assert peer_from_name("Node_not_an_ip") is None


def test_since_in_the_rendered_format_becomes_rfc3339_utc() -> None:
    """The form BIRD 2.0.12 prints under `timeformat protocol "%FT%T%z"`, on a host one hour
    east of UTC: `node status` shows UTC with its date, like every gingham time."""
    text = ("BIRD 2.0.12 ready.\nName       Proto      Table      State  Since         Info\n"
            "Mesh_192_0_2_2 BGP        ---        up     2026-12-02T15:32:07+0100  "
            "Established\n")
    (row,) = parse_protocols(text)
    assert (row.since, row.info) == ("2026-12-02T14:32:07Z", "Established")
