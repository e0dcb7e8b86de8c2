"""WorkloadEndpoint interfaceName and FelixConfiguration interfacePrefix (issue 12:
an endpoint must own only a workload interface, never the host's uplink)."""

from __future__ import annotations

import pytest

from gingham.errors import GinghamError
from gingham.model import parse_resource
from gingham.model.endpoints import (
    interface_prefix_problem,
    parse_interface_prefixes,
    workload_interface_problem,
)


def wep(ifname: object) -> dict[str, object]:
    return {"apiVersion": "projectcalico.org/v3", "kind": "WorkloadEndpoint",
            "metadata": {"name": "w", "namespace": "ns1"},
            "spec": {"interfaceName": ifname}}


def felix(prefix: object) -> dict[str, object]:
    return {"apiVersion": "projectcalico.org/v3", "kind": "FelixConfiguration",
            "metadata": {"name": "default"}, "spec": {"interfacePrefix": prefix}}


@pytest.mark.parametrize("name", ["gh0123456789a", "tap1234abcd-12", "a", "x" * 15, "gh_v.1"])
def test_valid_workload_interface_names(name: str) -> None:
    assert workload_interface_problem(name) is None
    assert parse_resource(wep(name)).spec.interface_name == name


@pytest.mark.parametrize(("name", "says"), [
    ("", "empty"),
    ("x" * 16, "16 bytes"),
    ("ghé" + "x" * 12, "bytes"),  # 15 characters, 16 bytes
    (".", "'.'"),
    ("..", "'..'"),
    ("gh/1", "'/'"),
    ("eth0:1", "':'"),
    ("gh 1", "whitespace"),
    ("gh\t1", "whitespace"),
    ('gh"1', "characters"),
    ("gh*", "characters"),
])
def test_invalid_workload_interface_names(name: str, says: str) -> None:
    problem = workload_interface_problem(name)
    assert problem is not None and says in problem
    with pytest.raises(GinghamError, match=r"spec\.interfaceName"):
        parse_resource(wep(name))


def test_parse_interface_prefixes() -> None:
    assert parse_interface_prefixes(None) == ("gh",)
    assert parse_interface_prefixes("cali") == ("cali",)
    assert parse_interface_prefixes(" gh , tap,gh ") == ("gh", "tap")


@pytest.mark.parametrize(("value", "says"), [
    ("", "empty"), ("  ", "empty"), ("gh,", "item 2 is empty"), ("gh,,tap", "item 2"),
    ("g h", "whitespace"), ("gh*", "characters"), ("x" * 16, "bytes"), ("tap:", "':'"),
])
def test_bad_interface_prefixes_are_refused_naming_the_item(value: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_interface_prefixes(value)
    with pytest.raises(GinghamError, match=r"spec\.interfacePrefix"):
        parse_resource(felix(value))


def test_interface_prefix_problem() -> None:
    gh = parse_interface_prefixes(None)
    assert interface_prefix_problem("gh0123456789a", gh) is None
    problem = interface_prefix_problem("eth0", gh)
    assert problem is not None and "'eth0'" in problem and "'gh'" in problem
    assert interface_prefix_problem("tap1", parse_interface_prefixes("gh,tap")) is None
    bad = interface_prefix_problem("gh:1", gh)
    assert bad is not None and bad.startswith("interfaceName")
    assert parse_resource(felix("gh,tap")).spec.interface_prefix == "gh,tap"
