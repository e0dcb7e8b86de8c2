"""Fuzz the CNI plugin's input handling: stdin text, network configuration, environment.

``read_config`` and ``netconf.parse`` run before anything touches the host or
the datastore, so they must turn every input into either an Invocation whose
names are safe to hand to ``ip``/``nsenter`` and the datastore, or a
PluginError with a CNI error code. The whole entry point is also run as the
runtime runs it (a subprocess, stdin and environment) for inputs that fail
before any work: it must print CNI error JSON, never a traceback.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gingham.cni import netconf
from gingham.cni.entry import read_config
from gingham.cni.protocol import PluginError

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CNI_BINARY = Path(sys.executable).with_name("gingham-cni")
SPEC_CODES = {1, 2, 3, 4, 5, 6, 7, 11, 50, 51}
SAFE_NAME = re.compile(r"^[a-z0-9][a-z0-9.\-]*$")
SAFE_IFNAME = re.compile(r"^[A-Za-z0-9_.\-]{1,15}$")
NASTY = ["", "eth0", "a" * 16, "x;rm -rf /", "$(reboot)", "`id`", "a b", "../../etc", "-n",
         "a\nb", "é", "default", "ns1", "web-1", "K8S", "a.b", "\x00", "|", "&&", "*"]  # fmt: skip

scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 70000), st.sampled_from(NASTY),
                    st.text(max_size=10))  # fmt: skip
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from([*NASTY, "name", "port"]),
                                                 inner, max_size=3)), max_leaves=8)  # fmt: skip


def _base_conf(tmp: str) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": "gingham",
        "type": "gingham",
        "datastore": f"sqlite://{tmp}/gingham.db",
        "nodename": "h1",
        "mtu": 0,
        "ipam": {"type": "gingham-ipam"},
        "args": {"org.gingham": {"namespace": "ns1", "name": "web-1", "labels": {"app": "web"},
                                 "ports": [{"name": "http", "protocol": "TCP", "port": 80}]}},
    }  # fmt: skip


CONF_FIELDS = ["cniVersion", "name", "datastore", "nodename", "mtu", "ipam", "args"]
OURS_FIELDS = ["namespace", "name", "labels", "ports", "orchestrator", "serviceAccount"]


@st.composite
def confs(draw: st.DrawFn) -> dict[str, Any]:
    conf = _base_conf("/nonexistent")
    for field in draw(st.lists(st.sampled_from(CONF_FIELDS), max_size=3)):
        if draw(st.booleans()):
            conf.pop(field, None)
        else:
            conf[field] = draw(values)
    ours = (
        (conf.get("args") or {}).get("org.gingham") if isinstance(conf.get("args"), dict) else None
    )
    if isinstance(ours, dict):
        for field in draw(st.lists(st.sampled_from(OURS_FIELDS), max_size=3)):
            ours[field] = draw(values)
    return conf


@st.composite
def envs(draw: st.DrawFn) -> dict[str, str]:
    env = {"CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0", "CNI_NETNS": "/proc/self/ns/net",
           "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=web-1"}  # fmt: skip
    for key in draw(st.lists(st.sampled_from(sorted(env)), max_size=3)):
        env[key] = draw(st.one_of(st.sampled_from(NASTY), st.text(max_size=20)))
    return env


def _checked(inv: netconf.Invocation) -> None:
    """What a parsed invocation promises the code that uses it."""
    for what, value in (("namespace", inv.namespace), ("node", inv.node),
                        ("orchestrator", inv.orchestrator)):  # fmt: skip
        assert SAFE_NAME.match(value), (what, value)
    if inv.workload:
        assert SAFE_NAME.match(inv.workload), inv.workload
    assert SAFE_IFNAME.match(inv.ifname), inv.ifname
    if inv.command in ("ADD", "DEL", "CHECK"):  # STATUS and GC do not use it
        assert re.match(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", inv.container_id), inv.container_id
    for k, v in inv.labels.items():
        assert isinstance(k, str) and isinstance(v, str)
        assert not set(k + v) & set(" ;$`|&()<>\\'\"\n*?"), (k, v)
    for port in inv.ports:
        assert 1 <= port.port <= 65535


@FUZZ
@given(st.sampled_from(["ADD", "DEL", "CHECK", "STATUS", "GC"]), confs(), envs())
def test_parse_gives_a_safe_invocation_or_a_plugin_error(
    command: str, conf: dict[str, Any], env: dict[str, str]
) -> None:
    try:
        inv = netconf.parse(command, conf, env)
    except PluginError as exc:
        assert exc.code in SPEC_CODES and exc.msg
        return
    _checked(inv)


@FUZZ
@given(st.one_of(st.text(max_size=120), values.map(json.dumps),
                 confs().map(json.dumps)))  # fmt: skip
def test_read_config_gives_an_object_or_a_plugin_error(text: str) -> None:
    try:
        conf = read_config(text)
    except PluginError as exc:
        assert exc.code in SPEC_CODES and exc.msg
        return
    assert isinstance(conf, dict)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("namespace", "x;touch /tmp/pwned"),
        ("namespace", "$(id)"),
        ("name", "web`id`"),
        ("name", "a b"),
        ("labels", {"app": "x;rm"}),
        ("labels", {"a$(id)": "v"}),
        ("labels", {"app": "`id`"}),
        ("serviceAccount", "sa|id"),
        ("orchestrator", "k8s&&id"),
    ],
)
def test_shell_metacharacters_in_workload_args_are_refused(field: str, value: Any) -> None:
    conf = _base_conf("/nonexistent")
    conf["args"]["org.gingham"][field] = value
    env = {"CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0", "CNI_NETNS": "/proc/self/ns/net"}
    with pytest.raises(PluginError) as info:
        netconf.parse("ADD", conf, env)
    assert info.value.code == 7


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("CNI_IFNAME", "eth0;id"),
        ("CNI_IFNAME", "$(id)"),
        ("CNI_IFNAME", "a/b"),
        ("CNI_CONTAINERID", "c1;id"),
        ("CNI_CONTAINERID", "../../x"),
        ("CNI_NETNS", "relative/path"),
        ("CNI_ARGS", "K8S_POD_NAMESPACE=a;b"),
        ("CNI_ARGS", "K8S_POD_NAME=$(id)"),
    ],
)
def test_shell_metacharacters_in_environment_are_refused(key: str, value: str) -> None:
    env = {"CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0", "CNI_NETNS": "/proc/self/ns/net"}
    env[key] = value
    with pytest.raises(PluginError) as info:
        netconf.parse("ADD", _base_conf("/nonexistent"), env)
    assert info.value.code in (4, 7)


def _run_entry(stdin: str, env: dict[str, str], tmp_path: Path) -> dict[str, Any]:
    full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
    proc = subprocess.run([str(CNI_BINARY)], input=stdin,
                          capture_output=True, text=True, env=full, timeout=30,
                          cwd=tmp_path, check=False)  # fmt: skip
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    out = json.loads(proc.stdout)
    assert isinstance(out, dict)
    return out


ENTRY_CASES = [
    ("", {"CNI_COMMAND": "ADD"}),
    ("{", {"CNI_COMMAND": "ADD"}),
    ("[]", {"CNI_COMMAND": "ADD"}),
    ("\x00\xff", {"CNI_COMMAND": "ADD"}),
    ('{"cniVersion": ["1.0.0"]}', {"CNI_COMMAND": "ADD"}),
    ('{"cniVersion": "9.9.9", "name": "n"}', {"CNI_COMMAND": "ADD"}),
    ('{"name": "n"}', {"CNI_COMMAND": "REBOOT"}),
    ('{"name": "n"}', {}),
    ('{"name": "n", "datastore": "sqlite:///x", "args": []}', {"CNI_COMMAND": "ADD",
     "CNI_CONTAINERID": "c", "CNI_NETNS": "/proc/self/ns/net"}),
    ('{"name": "n", "datastore": "sqlite:///x", "ipam": "x"}', {"CNI_COMMAND": "DEL",
     "CNI_CONTAINERID": "c"}),
    ('{"name": "n", "datastore": "sqlite:///x", "mtu": "1500"}', {"CNI_COMMAND": "DEL",
     "CNI_CONTAINERID": "c"}),
    ('{"name": "n", "datastore": "sqlite:///x"}', {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c",
     "CNI_NETNS": "/nonexistent/netns"}),
    ('{"name": "n", "datastore": "sqlite:///x"}', {"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "c",
     "CNI_IFNAME": "eth0;reboot"}),
]  # fmt: skip


@pytest.mark.parametrize(("stdin", "env"), ENTRY_CASES)
def test_entry_point_answers_bad_input_with_error_json(
    stdin: str, env: dict[str, str], tmp_path: Path
) -> None:
    out = _run_entry(stdin, env, tmp_path)
    assert out.get("code") in SPEC_CODES, out
    assert not str(out.get("msg", "")).startswith("internal error"), out


@pytest.mark.parametrize("args", [True, ["org.gingham"], "org.gingham", 3])
def test_args_that_are_not_an_object_are_refused(args: Any) -> None:
    conf = _base_conf("/nonexistent")
    conf["args"] = args
    env = {"CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0", "CNI_NETNS": "/proc/self/ns/net"}
    with pytest.raises(PluginError) as info:
        netconf.parse("ADD", conf, env)
    assert info.value.code == 7
