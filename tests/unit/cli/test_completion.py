"""Shell completion, as the shell runs it: the real ``gingham`` with ``_GINGHAM_COMPLETE``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.shell_completion import ShellComplete

from gingham.cli.completion import COMPLETE_ENV, attach, kind_words
from gingham.model.registry import all_kinds

GINGHAM = str(Path(sys.executable).parent / "gingham")
MANIFESTS = """\
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: alpha}
spec: {selector: all()}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: alpine}
spec: {selector: all()}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: beta}
spec: {selector: all()}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: api-ingress, namespace: shop}
spec: {podSelector: {}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-ingress, namespace: default}
spec: {podSelector: {}}
"""


def _env(datastore: str | None = None, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("GINGHAM_DATASTORE", "GINGHAM_CONTEXT")}  # fmt: skip
    # Never the machine's current lab or a context: a datastore that does not exist
    # unless given, and no config file.
    env["GINGHAM_DATASTORE"] = datastore or "sqlite:///nonexistent/gingham-completion.db"
    env["GINGHAM_CONFIG"] = "/nonexistent/gingham-completion/config.yaml"
    env.update(more)
    return env


def complete(words: str, datastore: str | None = None, *, fallback: bool = False) -> list[str]:
    """What bash would be offered for the last word of ``words`` (empty if it ends in a
    space); ``fallback``: no datastore given at all, as a user with none set up."""
    cword = len(words.split()) - (0 if words.endswith(" ") else 1)
    env = _env(datastore, **{COMPLETE_ENV: "bash_complete", "COMP_WORDS": words,
                             "COMP_CWORD": str(cword)})  # fmt: skip
    if fallback:
        del env["GINGHAM_DATASTORE"]
    out = subprocess.run([GINGHAM], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    return [line.split(",", 1)[1] for line in out.stdout.splitlines() if line]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    directory = tmp_path_factory.mktemp("completion")
    url = f"sqlite://{directory}/gingham.db"
    manifest = directory / "m.yaml"
    manifest.write_text(MANIFESTS)
    subprocess.run([GINGHAM, "--datastore", url, "apply", "-f", str(manifest)], check=True,
                   capture_output=True, timeout=60)  # fmt: skip
    return url


def test_kinds_complete_by_every_spelling() -> None:
    assert complete("gingham get glob") == [
        "globalnetworkpolicies", "globalnetworkpolicy", "globalnetworkset", "globalnetworksets"]
    assert complete("gingham delete Glob") == ["GlobalNetworkPolicy", "GlobalNetworkSet"]
    assert complete("gingham get kn") == ["knp"]
    assert complete("gingham get frob") == []
    every = set(complete("gingham get "))
    for info in all_kinds():
        assert {info.kind, info.plural, *info.short_names} <= every, info.name
    assert every == set(kind_words())


def test_names_come_from_the_datastore(store: str) -> None:
    assert complete("gingham get gnp al", store) == ["alpha", "alpine"]
    assert complete("gingham get globalnetworkpolicies ", store) == ["alpha", "alpine", "beta"]
    assert complete("gingham delete gnp alpha ", store) == ["alpine", "beta"]  # not twice
    assert complete("gingham get knp ", store) == ["web-ingress"]  # namespace default
    assert complete("gingham get knp -n shop ", store) == ["api-ingress"]
    assert complete("gingham get knp -A ", store) == ["api-ingress", "web-ingress"]
    # --datastore on the line wins over the environment, as for the command itself
    assert complete(f"gingham --datastore {store} get gnp b") == ["beta"]
    # TYPE/NAME, as get -o name prints them
    assert complete("gingham get gnp/alp", store) == ["gnp/alpha", "gnp/alpine"]


def test_a_verb_with_one_operand_list_completes_kind_then_name(
    store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `label KIND NAME k=v...` takes its operands as one nargs=-1 argument, `args`.
    @click.group()
    @click.option("--datastore")
    def root(datastore: str | None) -> None: ...

    @root.command("label")
    @click.argument("args", nargs=-1)
    def label(args: tuple[str, ...]) -> None: ...

    attach(label, "label")
    monkeypatch.setenv("GINGHAM_DATASTORE", store)
    monkeypatch.setenv("GINGHAM_CONFIG", "/nonexistent/gingham-completion/config.yaml")

    def offered(args: list[str], incomplete: str) -> list[str]:
        shell = ShellComplete(root, {}, "gingham", COMPLETE_ENV)
        return [c.value for c in shell.get_completions(args, incomplete)]

    assert offered(["label"], "globalnetworkp") == ["globalnetworkpolicies", "globalnetworkpolicy"]
    assert offered(["label", "gnp"], "al") == ["alpha", "alpine"]
    assert offered(["label", "gnp", "alpha"], "") == []  # labels are the operator's


def test_no_names_and_no_traceback_without_a_datastore(tmp_path: Path) -> None:
    missing = tmp_path / "absent.db"
    assert complete("gingham get gnp ", f"sqlite://{missing}") == []
    assert not missing.exists()  # completing never creates a datastore
    assert complete("gingham get gnp ", "etcd://127.0.0.1:1") == []
    assert complete("gingham get gnp ", "nonsense://") == []
    # Falling back to the current lab's or the default datastore: names or none, but no
    # note or error on stderr (complete() checks), which would land on the command line.
    complete("gingham get gnp ", fallback=True)


def test_completion_prints_scripts_for_each_shell() -> None:
    for shell in ("bash", "zsh", "fish"):
        out = subprocess.run([GINGHAM, "completion", shell], capture_output=True, text=True,
                             check=True, timeout=60)  # fmt: skip
        assert f"{COMPLETE_ENV}={shell}_complete" in out.stdout, shell
    bad = subprocess.run([GINGHAM, "completion", "tcsh"], capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert bad.returncode == 2 and "tcsh" in bad.stderr


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_bash_sources_the_script_and_completes(store: str) -> None:
    script = (
        "source <(gingham completion bash) || exit 9\n"
        "complete -p gingham || exit 8\n"
        "COMP_WORDS=(gingham get gnp al); COMP_CWORD=3\n"
        "_gingham_completion gingham\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
        "COMPREPLY=(); COMP_WORDS=(gingham lab ma); COMP_CWORD=2\n"
        "_gingham_completion gingham\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    env = _env(store, PATH=f"{Path(GINGHAM).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    out = subprocess.run(["bash", "--norc", "-c", script], capture_output=True, text=True,
                         env=env, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("complete ") and lines[0].endswith(" gingham")
    assert lines[1:] == ["alpha", "alpine", "matrix"]
