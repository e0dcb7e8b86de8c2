"""The nft contract suite (tests/unit/dataplane/test_nft_contract.py) against
the real nft, each test in a throwaway network namespace."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from gingham.dataplane.nft import NFT, NFTInterface, Table, Transaction
from tests.unit.dataplane.test_nft_contract import *  # noqa: F403
from tests.unit.dataplane.test_nft_contract import base_tx

pytestmark = pytest.mark.integration


@pytest.fixture
def nft(netns: Callable[[str], str]) -> Iterator[NFTInterface]:
    yield NFT(netns=netns("nft"))


def test_fake_and_kernel_dump_alike(netns: Callable[[str], str]) -> None:
    from gingham.dataplane.nft import Chain
    from gingham.dataplane.nft_fake import FakeNFT

    real, fake = NFT(netns=netns("nft")), FakeNFT()
    extra = Transaction()
    for i, (hook, kind, prio) in enumerate([
        ("input", "filter", -5), ("input", "filter", 10), ("input", "filter", -150),
        ("output", "filter", 100), ("output", "filter", -300), ("input", "filter", 11),
        ("prerouting", "nat", -100), ("postrouting", "nat", 95), ("output", "route", -150),
        ("input", "filter", 50),
    ]):
        extra.add(Chain(f"base{i}", type=kind, hook=hook, priority=prio))
    for backend in (real, fake):
        backend.run(base_tx())
        backend.run(extra)
    assert _joined(fake.dump()) == _joined(real.dump())


def _joined(text: str) -> list[str]:
    """Lines stripped, element lists that nft wraps joined back into one line."""
    out: list[str] = []
    for line in (raw.strip() for raw in text.splitlines()):
        if out and out[-1].endswith(","):
            out[-1] += " " + line
        else:
            out.append(line)
    return out


def test_error_names_line_and_stderr(netns: Callable[[str], str]) -> None:
    from gingham.dataplane.nft import Chain, NFTError, Rule, Table

    real = NFT(netns=netns("nft"))
    tx = Transaction().add(Table()).add(Chain("a")).add(Rule("b", "accept"))
    with pytest.raises(NFTError) as info:
        real.run(tx)
    assert info.value.line_number == 3
    assert info.value.script_line == "add rule inet gingham b accept"
    assert "No such file or directory" in info.value.stderr
    assert "line 3" in str(info.value)


def test_keyword_list_matches_this_nft(netns: Callable[[str], str]) -> None:
    """Every word in NFT_KEYWORDS fails as a chain name; ordinary words do not."""
    import subprocess

    from gingham.dataplane.nft import NFT_KEYWORDS
    from gingham.lab.netns import in_netns

    ns = netns("kw")
    NFT(netns=ns).run(Transaction().add(Table()))

    def parses(word: str) -> bool:
        argv = in_netns(ns, ["nft", "-c", "-f", "-"])
        script = f"add chain inet gingham {word}\n"
        return subprocess.run(argv, input=script, capture_output=True, text=True).returncode == 0

    assert [w for w in sorted(NFT_KEYWORDS) if parses(w)] == []
    assert all(parses(w) for w in ("filter", "forward", "input", "tw-abc", "pol-1", "gh"))


def test_counters_count_real_packets(netns: Callable[[str], str]) -> None:
    from gingham.dataplane.nft import Chain, Rule
    from gingham.lab.netns import run_in_netns

    ns = netns("cnt")
    real = NFT(netns=ns)
    real.run(
        Transaction()
        .add(Table())
        .add(Chain("out", type="filter", hook="output", priority=0, policy="accept"))
        .add(Rule("out", "ip daddr 127.0.0.1 icmp type echo-request counter", comment="pings"))
        .add(Rule("out", "ip daddr 127.0.0.2 counter accept"))
    )
    run_in_netns(ns, ["busybox", "ping", "-c", "3", "-i", "0.2", "-W", "1", "127.0.0.1"])
    got = {c.comment: (c.packets, c.bytes) for c in real.counters()}
    assert got["pings"][0] == 3 and got["pings"][1] == 3 * 84
    assert got[None] == (0, 0)
    snap = real.snapshot()
    assert snap is not None and snap.counters == real.counters()
