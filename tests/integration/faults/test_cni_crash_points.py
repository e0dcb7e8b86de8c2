"""The datastore vanishes at every point of a CNI ADD: nothing stays behind for good.

A CNI ADD makes a handful of datastore calls (namespace, IPAM reads and
compare-and-swaps, the endpoint). The plugin runs here in-process inside a
throwaway "host" namespace with its datastore wrapped so that call number K,
and every call after it, raises Unavailable: the datastore went away at that
moment and did not come back before the plugin gave up. K sweeps every call
of a successful ADD.

Expected for every K: the runtime gets code 11 ("try again"); no veth is left
in either namespace and no WorkloadEndpoint exists. An address may stay
allocated when the datastore died between allocation and the undo's release
(the undo cannot reach it either); that is what the leak check is for, so the
test requires that two checks with no grace period find and release it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gingham.datastore import open_datastore
from gingham.datastore.resources import ResourceStore
from gingham.lab.lab import DEFAULT_POOL
from gingham.model import parse_resource
from tests.integration.faults import tools

pytestmark = pytest.mark.integration

RUNNER = """
import json, sys
from gingham.cni import plugin
from gingham.cni.host import DirectHost
from gingham.cni.protocol import PluginError
from gingham.datastore import open_datastore
from gingham.errors import Unavailable

fail_at, conf, env = int(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3])
command = env["CNI_COMMAND"]
calls = []
OPS = ("get", "list", "create", "update", "delete", "txn", "revision", "grant_lease", "keepalive")


class Vanishing:
    def __init__(self, ds):
        self._ds = ds

    def __getattr__(self, name):
        attr = getattr(self._ds, name)
        if name not in OPS:
            return attr

        def call(*args, **kwargs):
            calls.append(name)
            if fail_at and len(calls) >= fail_at:
                raise Unavailable(f"injected: the datastore vanished at call {len(calls)}")
            return attr(*args, **kwargs)

        return call


class VanishingHost(DirectHost):
    def open_datastore(self, inv):
        return Vanishing(open_datastore(inv.datastore))


try:
    plugin.dispatch(command, conf, env, ipam_only=False, host=VanishingHost())
    print(json.dumps({"ok": True, "calls": calls}))
except PluginError as exc:
    print(json.dumps({"ok": False, "code": exc.code, "msg": exc.msg, "calls": calls}))
"""


@pytest.fixture(scope="module")
def setup() -> Iterator[tuple[str, str, str]]:
    tmp = Path(tempfile.mkdtemp(prefix="gingham-crashpoints-"))
    try:
        url = f"sqlite://{tmp / 'gingham.db'}"
        ds = open_datastore(url, create=True)
        try:
            ResourceStore(ds).apply(parse_resource(DEFAULT_POOL))
        finally:
            ds.close()
        host, wl = f"ght{os.getpid()}-1-cph", f"ght{os.getpid()}-1-cpw"
        with tools.throwaway_netns([host, wl]):
            yield url, host, wl
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _add(url: str, host: str, wl: str, fail_at: int, cid: str) -> dict[str, Any]:
    return _cni("ADD", url, host, wl, fail_at, cid)


def _cni(command: str, url: str, host: str, wl: str, fail_at: int, cid: str) -> dict[str, Any]:
    conf = {"cniVersion": "1.0.0", "name": "gingham", "type": "gingham", "datastore": url,
            "nodename": "cp1", "mtu": 1400, "ipam": {"type": "gingham-ipam"},
            "args": {"org.gingham": {"namespace": "cp", "name": cid}}}  # fmt: skip
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": f"/run/netns/{wl}",
           "CNI_IFNAME": "eth0", "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin")}  # fmt: skip
    r = subprocess.run(tools.nsenter(host, sys.executable, "-c", RUNNER, str(fail_at),
                                     json.dumps(conf), json.dumps(env)),
                       capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert r.returncode == 0 and r.stdout.strip(), r.stderr
    out: dict[str, Any] = json.loads(r.stdout.strip().splitlines()[-1])
    return out


def _links(netns: str) -> set[str]:
    out = subprocess.run(tools.nsenter(netns, "ip", "-j", "link", "show"), capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    return {link["ifname"] for link in json.loads(out)} - {"lo"}


def _state(url: str) -> tuple[set[str], set[str], int]:
    ds = open_datastore(url)
    try:
        handles, _ = ds.list("/gingham/v1/ipam/handles/")
        eps, _ = ds.list("/gingham/v1/resources/WorkloadEndpoint/")
        blocks, _ = ds.list("/gingham/v1/ipam/blocks/")
    finally:
        ds.close()
    used = sum(sum(1 for a in kv.value.get("allocations", []) if a is not None) for kv in blocks)
    return ({kv.key.rsplit("/", 1)[-1] for kv in handles},
            {kv.value["spec"]["containerID"] for kv in eps}, used)  # fmt: skip


def _leak_check(url: str) -> dict[str, Any]:
    from gingham.lab import lab as labmod

    r = subprocess.run([labmod.gingham_binary(), "--datastore", url, "ipam", "check", "--grace",
                        "0", "--release", "-o", "json"], capture_output=True, text=True,
                       timeout=60, check=False)  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc: dict[str, Any] = json.loads(r.stdout)
    return doc


def test_datastore_vanishing_at_any_call_of_an_add(setup: tuple[str, str, str]) -> None:
    url, host, wl = setup
    good = _add(url, host, wl, 0, "cp-good")
    assert good["ok"], good
    n_calls = len(good["calls"])
    assert n_calls >= 3, good
    # Undo the good one with a DEL, so each K starts from the same state.
    _undo_add(url, host, "cp-good")
    baseline = _state(url)
    leaked_then_released = []
    for k in range(1, n_calls + 1):
        cid = f"cp-k{k}"
        out = _add(url, host, wl, k, cid)
        if out["ok"] and len(out["calls"]) < k:
            # This ADD needs fewer calls than the first (its block is claimed now):
            # every one of them has been cut.
            _undo_add(url, host, cid)
            break
        assert not out["ok"], f"K={k}: the ADD succeeded although call {k} failed: {out}"
        assert out["code"] == 11, f"K={k}: want 'try again' (11), got {out}"
        assert _links(host) == set(), f"K={k}: veth left on the host: {_links(host)}"
        assert _links(wl) == set(), f"K={k}: interface left in the workload: {_links(wl)}"
        handles, endpoints, used = _state(url)
        assert cid not in endpoints, f"K={k}: endpoint left"
        if used > baseline[2] or handles - baseline[0]:
            leaked_then_released.append((k, out["calls"][k - 1]))
            _leak_check(url)  # first sighting
            report = _leak_check(url)  # second sighting: released
            assert report.get("release", {}).get("released"), f"K={k}: {report}"
        assert _state(url)[2] == baseline[2], f"K={k}: an address stays allocated"
        assert not (_state(url)[0] - baseline[0]), f"K={k}: a handle stays"
    print("\nRELIABILITY " + json.dumps({"cni_crash_points": n_calls,
                                         "left_for_the_leak_check": leaked_then_released}))  # fmt: skip


def _undo_add(url: str, host: str, cid: str) -> None:
    from gingham.ipam import IPAM

    subprocess.run(tools.nsenter(host, "ip", "link", "del", _only(_links(host))), check=True)
    ds = open_datastore(url)
    try:
        IPAM(ds, host="cp1").release_by_handle(f"gingham.{cid}")
        for kv in ds.list("/gingham/v1/resources/WorkloadEndpoint/")[0]:
            ds.delete(kv.key)
    finally:
        ds.close()


def _only(names: set[str]) -> str:
    assert len(names) == 1, names
    return next(iter(names))


def test_datastore_vanishing_at_any_call_of_a_del(setup: tuple[str, str, str]) -> None:
    """A DEL cut short says "try again", and the runtime's next DEL finishes the job."""
    url, host, wl = setup
    baseline = _state(url)
    assert _add(url, host, wl, 0, "cp-del")["ok"]
    good = _cni("DEL", url, host, wl, 0, "cp-del")
    assert good["ok"], good
    n_calls = len(good["calls"])
    assert n_calls >= 3, good
    assert _state(url) == baseline and _links(host) == set()
    for k in range(1, n_calls + 1):
        cid = f"cp-d{k}"
        assert _add(url, host, wl, 0, cid)["ok"]
        out = _cni("DEL", url, host, wl, k, cid)
        assert not out["ok"] and out["code"] == 11, f"K={k}: want 'try again' (11), got {out}"
        again = _cni("DEL", url, host, wl, 0, cid)
        assert again["ok"], f"K={k}: the retried DEL failed: {again}"
        assert _links(host) == set() and _links(wl) == set(), f"K={k}: an interface is left"
        assert _state(url) == baseline, f"K={k}: {_state(url)} != {baseline}"
