"""``gingham flows`` shows the lab's own packet-log lines, each with its host, and nothing
else of the machine's kernel log: not another firewall's lines, not a line with gingham's
prefix from a namespace outside the lab, not a line a process wrote into /dev/kmsg."""

from __future__ import annotations

import errno
import json
import os
import subprocess
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from gingham.cli.main import cli
from gingham.datastore.resources import apply_manifests
from gingham.lab import lab as labmod
from gingham.lab import matrix, workloads
from gingham.lab import state as labstate
from gingham.policy import flows
from tests.integration.faults.tools import wait_until

pytestmark = pytest.mark.integration

LOG_ID = "policy:default/x/log-in:i0"
LOG_IN = """apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: log-in, namespace: x}
spec:
  selector: pod == 'a'
  ingress:
  - action: Log
    protocol: TCP
  - action: Allow
"""
FOREIGN_PORT = 40000 + os.getpid() % 20000  # marks the lines this test writes outside the lab


@pytest.fixture(scope="module")
def lab() -> Iterator[str]:
    name = f"t17fl{os.getpid() % 100000}"
    labmod.down(name)  # a crashed earlier run with the same pid
    try:
        labmod.up(name, hosts=2, make_current=False)
        workloads.add(name, "x/a", "h1", {"pod": "a"}, [(80, "tcp", "http")])
        workloads.add(name, "x/b", "h2", {"pod": "b"})
        apply_manifests(labstate.load(name).datastore, LOG_IN)
        yield name
    finally:
        labmod.down(name)


@pytest.fixture
def netns_logging() -> Iterator[None]:
    before = flows.NF_LOG_ALL_NETNS.read_text()
    flows.enable_netns_logging()
    try:
        yield
    finally:
        flows.NF_LOG_ALL_NETNS.write_text(before)


@pytest.fixture
def foreign_netns() -> Iterator[str]:
    """A namespace outside the lab whose nftables log one packet twice: with gingham's
    prefix and rule-id form, and with another firewall's prefix."""
    ns = f"t17foreign{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        rules = (f"table inet t17foreign {{\n chain out {{\n"
                 "  type filter hook output priority 0; policy accept;\n"
                 f'  udp dport {FOREIGN_PORT} log prefix "gingham {LOG_ID}: "\n'
                 f'  udp dport {FOREIGN_PORT} log prefix "[OTHER BLOCK] "\n }}\n}}\n')
        subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=rules, text=True,
                       check=True)
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def _raw_kmsg() -> list[tuple[int, str]]:
    """(facility, message) of every record in the ring buffer, whoever wrote it."""
    fd = os.open(flows.KMSG, os.O_RDONLY | os.O_NONBLOCK)
    out = []
    try:
        while True:
            try:
                data = os.read(fd, 8192).decode("utf-8", "replace")
            except BlockingIOError:
                return out
            except OSError as exc:
                if exc.errno == errno.EPIPE:
                    continue
                raise
            parsed = flows.parse_kmsg_record(data)
            if parsed is not None:
                out.append((flows.kmsg_facility(data) or 0, parsed[2]))
    finally:
        os.close(fd)


def _flows(lab: str, *args: str) -> list[dict[str, object]]:
    url = labstate.load(lab).datastore
    got = CliRunner().invoke(cli, ["--datastore", url, "flows", "--lab", lab, "--tail", "1000",
                                   "-o", "json", *args])
    assert got.exit_code == 0, got.output
    rows: list[dict[str, object]] = json.loads(got.stdout)
    return rows


def test_only_the_labs_lines_with_their_host(lab: str, netns_logging: None,
                                             foreign_netns: str) -> None:
    st = labstate.load(lab)
    a, b = st.workload("x/a"), st.workload("x/b")
    # 1. a line with gingham's prefix, through no interface of the lab, and another firewall's
    send = (f"import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
            f".sendto(b'x', ('127.0.0.1', {FOREIGN_PORT}))")
    subprocess.run(["ip", "netns", "exec", foreign_netns, "python3", "-c", send], check=True)
    # 2. a process writes a perfect copy of a lab line, interfaces and addresses included
    forged = (f"gingham {LOG_ID}: IN={b.interface} OUT={a.interface} SRC={b.ips[0]} "
              f"DST={a.ips[0]} LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1 DF PROTO=TCP SPT=1234 "
              f"DPT={FOREIGN_PORT} WINDOW=64240 RES=0x00 SYN URGP=0")
    with open(flows.KMSG, "w") as kmsg:
        kmsg.write(forged + "\n")
    # 3. the lab's own line: x/b -> x/a:80, logged at x/a's host h1

    def logged() -> bool:
        matrix.probe(b, a, 80)
        return any(r["ruleId"] == LOG_ID and r["destinationName"] == "x/a" for r in _flows(lab))

    wait_until(logged, 20, "a flow for the Log rule in front of x/a")
    # the foreign lines are in the kernel log: were flows unscoped, it would show them
    raw = [(fac, msg) for fac, msg in _raw_kmsg() if f"DPT={FOREIGN_PORT}" in msg]
    assert {fac for fac, _ in raw} == {0, 1}
    assert any(m.startswith(f"gingham {LOG_ID}: ") and "OUT=lo" in m for _, m in raw), raw
    assert any(m.startswith("[OTHER BLOCK] ") for _, m in raw), raw

    rows = _flows(lab)
    assert rows and not [r for r in rows if r["destinationPort"] == FOREIGN_PORT]
    mine = [r for r in rows if r["ruleId"] == LOG_ID and r["destinationName"] == "x/a"]
    assert {r["host"] for r in mine} == {"h1"}
    assert all(r["sourceName"] == "x/b" and r["destinationPort"] == 80 for r in mine)
    assert str(mine[-1]["time"]).endswith("Z")
    # --host: h2 logged none of them; a host the lab lacks is an error naming its hosts
    assert not [r for r in _flows(lab, "--host", "h2") if r["ruleId"] == LOG_ID]
    assert {r["host"] for r in _flows(lab, "--host", "h1")} == {"h1"}
    got = CliRunner().invoke(cli, ["--datastore", st.datastore, "flows", "--lab", lab,
                                   "--host", "h9"])
    assert got.exit_code == 1 and f"lab {lab} has no host 'h9' (hosts: h1, h2)" in got.output
    # the table: a HOST column
    got = CliRunner().invoke(cli, ["--datastore", st.datastore, "flows", "--lab", lab,
                                   "--workload", "x/a"])
    lines = got.stdout.splitlines()
    assert lines[0].split()[:2] == ["TIME", "HOST"] and lines[-1].split()[1] == "h1"
