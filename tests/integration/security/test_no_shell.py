"""No shell is ever invoked, and names from manifests or CNI input are checked before use.

The source check walks the syntax tree of every module under src/ (a grep
would miss ``shell = True`` spelled over two lines and trip on comments).
The validators are called with shell metacharacters in every name that
reaches an argument list, an nft script or a file path.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gingham.errors import GinghamError

SRC = Path(__file__).resolve().parents[3] / "src" / "gingham"
SHELLS = {"sh", "bash", "dash", "zsh", "/bin/sh", "/bin/bash", "/usr/bin/sh", "/usr/bin/bash"}
FORBIDDEN_CALLS = {
    "os.system", "os.popen", "os.spawnl", "os.spawnlp", "os.spawnv", "os.spawnvp",
    "subprocess.getoutput", "subprocess.getstatusoutput", "pty.spawn",
    "asyncio.create_subprocess_shell", "commands.getoutput",
}  # fmt: skip
# Bare names too (``from subprocess import run``); methods like ``self.call`` are not these.
SUBPROCESS = {"run", "Popen", "call", "check_call", "check_output"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _findings(path: Path, root: Path = SRC) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        where = f"{path.relative_to(root.parent)}:{node.lineno}"
        name = _dotted(node.func)
        if name in FORBIDDEN_CALLS:
            out.append(f"{where}: {name}()")
        for kw in node.keywords:
            if kw.arg == "shell" and not (
                isinstance(kw.value, ast.Constant) and kw.value.value is False
            ):
                out.append(f"{where}: shell={ast.unparse(kw.value)}")
        if (name in SUBPROCESS or name.removeprefix("subprocess.") in SUBPROCESS) and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant | ast.JoinedStr | ast.BinOp):
                out.append(f"{where}: {name}() with a command string, not a list")
            if isinstance(first, ast.List) and first.elts:
                head = first.elts[0]
                if isinstance(head, ast.Constant) and head.value in SHELLS:
                    out.append(f"{where}: {name}() runs a shell ({head.value})")
    return out


def test_source_tree_is_found() -> None:
    assert len(list(SRC.rglob("*.py"))) > 50


def test_no_shell_anywhere_in_the_source() -> None:
    findings = [f for path in sorted(SRC.rglob("*.py")) for f in _findings(path)]
    assert findings == [], "\n".join(findings)


def test_the_checker_catches_what_it_is_meant_to(tmp_path: Path) -> None:
    sample = tmp_path / "gingham" / "x.py"
    sample.parent.mkdir()
    sample.write_text(
        "import os, subprocess\n"
        "os.system('ls')\n"
        "subprocess.run('ls', shell=True)\n"  # two findings: shell=True and a string
        "subprocess.run(['bash', '-c', 'ls'])\n"
        "flag = True\n"
        "subprocess.Popen(['ls'], shell=flag)\n"
        "subprocess.run(['ls', '-l'], shell=False)\n"  # fine
    )
    found = _findings(sample, root=sample.parent)
    assert len(found) == 5, found


# --- names with shell metacharacters are refused before use -------------------------

NASTY = ["a;reboot", "$(id)", "`id`", "a b", "a|b", "a&&b", "a>b", "../x", "a\nb", "*", ""]


def _cni_name(value: str) -> None:
    from gingham.cni.netconf import check_name

    check_name(value, "namespace")


def _cni_labels(value: str) -> None:
    from gingham.cni.netconf import check_labels

    check_labels({"app": value}, "labels")
    check_labels({value: "v"}, "labels")


def _cni_ifname(value: str) -> None:
    from gingham.cni.plumbing import check_ifname

    check_ifname(value)


def _cni_netns(value: str) -> None:
    from gingham.cni.plumbing import check_netns_path

    check_netns_path("/run/netns/" + value)


def _lab_workload_ref(value: str) -> None:
    from gingham.lab.workloads import parse_ref

    parse_ref(f"ns/{value}")
    parse_ref(f"{value}/name")


def _model_interface(value: str) -> None:
    from gingham.model import parse_resource

    parse_resource(
        {"apiVersion": "projectcalico.org/v3", "kind": "HostEndpoint",
         "metadata": {"name": "h"}, "spec": {"node": "h1", "interfaceName": value}}
    )  # fmt: skip


def _model_labels(value: str) -> None:
    from gingham.model import parse_resource

    for labels in ({"app": value}, {value: "v"}):
        parse_resource(
            {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkSet",
             "metadata": {"name": "s", "labels": labels}, "spec": {"nets": []}}
        )  # fmt: skip


def _model_namespace(value: str) -> None:
    from gingham.model import parse_resource

    parse_resource(
        {"apiVersion": "projectcalico.org/v3", "kind": "NetworkSet",
         "metadata": {"name": "s", "namespace": value}, "spec": {"nets": []}}
    )  # fmt: skip


def _model_name(value: str) -> None:
    from gingham.model import parse_resource

    parse_resource(
        {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkSet",
         "metadata": {"name": value}, "spec": {"nets": []}}
    )  # fmt: skip


def _nft_name(value: str) -> None:
    from gingham.dataplane import nft

    nft._check_name("chain", value)


CHECKS: dict[str, Callable[[str], Any]] = {
    "cni namespace/workload name": _cni_name,
    "cni labels": _cni_labels,
    "cni interface name": _cni_ifname,
    "cni netns path": _cni_netns,
    "lab workload ref": _lab_workload_ref,
    "model interfaceName": _model_interface,
    "model labels": _model_labels,
    "model namespace": _model_namespace,
    "model name": _model_name,
    "nft chain/set name": _nft_name,
}


def _refused(check: Callable[[str], Any], value: str) -> bool:
    from gingham.cni.protocol import PluginError

    try:
        check(value)
    except (GinghamError, PluginError):
        return True
    return False


@pytest.mark.parametrize("what", sorted(CHECKS))
@pytest.mark.parametrize("value", NASTY)
def test_names_with_shell_metacharacters_are_refused(what: str, value: str) -> None:
    if what == "nft chain/set name" and value == "../x":
        pytest.skip("'/' and '.' are legal in nft names; the script is fed on stdin, no shell")
    if what == "model interfaceName" and value == "*":
        pytest.skip("'*' is HostEndpoint's documented 'every interface of the host'")
    if what == "cni netns path" and value == "":
        pytest.skip("/run/netns/ itself is a path that exists; CNI_NETNS='' is refused by parse")
    assert _refused(CHECKS[what], value), f"{what} accepted {value!r}"
