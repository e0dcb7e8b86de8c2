"""Where am I: ``gingham config view``, contexts, and no silent fallback to a lab or the default."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gingham.cli.contexts import config_path, resolve
from gingham.cli.main import cli
from gingham.datastore import open_datastore
from gingham.names import CONFIG_ENV, CONTEXT_ENV, DATASTORE_ENV, DEFAULT_DATASTORE_URL

LAB_ENV = "GINGHAM_LAB_RUN_DIR"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A config file and a labs' directory of our own; none of the caller's settings."""
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "config.yaml"))
    monkeypatch.setenv(LAB_ENV, str(tmp_path / "run"))
    monkeypatch.delenv(DATASTORE_ENV, raising=False)
    monkeypatch.delenv(CONTEXT_ENV, raising=False)
    yield tmp_path


def gingham(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def make_lab(home: Path, name: str = "demo") -> str:
    url = f"sqlite://{home}/{name}.db"
    open_datastore(url, create=True).close()
    (home / "run" / "lab" / name).mkdir(parents=True)
    (home / "run" / "lab" / name / "state.json").write_text(json.dumps({"datastore": url}))
    (home / "run" / "current-lab").write_text(name + "\n")
    return url


def view(*global_args: str) -> dict[str, object]:
    got = gingham(*global_args, "config", "view", "-o", "json")
    assert got.exit_code == 0, got.output
    data: dict[str, object] = json.loads(got.stdout)
    return data


def test_each_source_in_order(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert (view()["source"], view()["datastore"]) == ("default", DEFAULT_DATASTORE_URL)
    lab_url = make_lab(home)
    assert (view()["source"], view()["lab"], view()["datastore"]) == ("lab", "demo", lab_url)
    for name in ("current", "by-env", "by-flag"):
        assert gingham("config", "set-context", name, "--datastore",
                       f"sqlite:///{name}.db").exit_code == 0
    assert gingham("config", "use-context", "current").exit_code == 0
    assert (view()["source"], view()["context"]) == ("current-context", "current")
    monkeypatch.setenv(CONTEXT_ENV, "by-env")
    assert (view()["source"], view()["datastore"]) == ("context-env", "sqlite:///by-env.db")
    got = view("--context", "by-flag")
    assert (got["source"], got["datastore"]) == ("context-flag", "sqlite:///by-flag.db")
    monkeypatch.setenv(DATASTORE_ENV, "sqlite:///env.db")
    got = view("--context", "by-flag")
    assert (got["source"], got["datastore"]) == ("env", "sqlite:///env.db")
    got = view("--datastore", "sqlite:///flag.db", "--context", "by-flag")
    assert (got["source"], got["datastore"]) == ("flag", "sqlite:///flag.db")


def test_a_read_that_falls_back_to_the_lab_says_so_on_stderr_only(home: Path) -> None:
    lab_url = make_lab(home)
    got = gingham("get", "globalnetworkpolicies", "-o", "json")
    assert got.exit_code == 0, got.output
    json.loads(got.stdout)  # stdout is the JSON alone
    assert got.stderr == (f"note: using the datastore of lab 'demo', {lab_url} (no --datastore, "
                          f"{DATASTORE_ENV} or context set)\n")
    got = gingham("-q", "get", "globalnetworkpolicies", "-o", "json")
    assert got.exit_code == 0 and got.stderr == ""
    got = gingham("--datastore", lab_url, "get", "globalnetworkpolicies", "-o", "json")
    assert got.exit_code == 0 and got.stderr == ""


def test_the_default_is_named_too(home: Path) -> None:
    got = gingham("get", "globalnetworkpolicies")
    assert got.stderr.startswith(f"note: using the default datastore {DEFAULT_DATASTORE_URL} "
                                 f"(no --datastore, {DATASTORE_ENV}, context or lab set)\n")


def test_an_unknown_context_is_an_error_listing_the_known_ones(home: Path,
                                                               monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    make_lab(home)  # never a silent step down to it
    for name in ("b", "a"):
        gingham("config", "set-context", name, "--datastore", f"sqlite:///{name}.db")
    got = gingham("--context", "nope", "get", "globalnetworkpolicies")
    assert got.exit_code == 1
    assert got.output == (f"error: --context: no context 'nope' in {home}/config.yaml; known "
                          "contexts: a, b\n")
    monkeypatch.setenv(CONTEXT_ENV, "nope")
    got = gingham("config", "view")
    assert got.exit_code == 1 and got.output.startswith(f"error: {CONTEXT_ENV}: no context 'nope'")
    monkeypatch.delenv(CONTEXT_ENV)
    got = gingham("config", "use-context", "nope")
    assert got.exit_code == 1 and "known contexts: a, b" in got.output
    # a current-context whose entry was removed by hand
    (home / "config.yaml").write_text("current-context: gone\ncontexts: []\n")
    got = gingham("get", "globalnetworkpolicies")
    assert got.exit_code == 1
    assert got.output.startswith(f"error: {home}/config.yaml: current-context: no context 'gone'")


def test_context_commands_and_the_file(home: Path) -> None:
    got = gingham("config", "set-context", "prod", "--datastore",
                  "etcd://admin:s3cret@10.0.0.5:2379")
    assert (got.exit_code, got.output) == (0, 'Context "prod" created.\n')
    got = gingham("config", "set-context", "prod", "--datastore", "etcd://10.0.0.6:2379")
    assert got.output == 'Context "prod" modified.\n'
    gingham("config", "set-context", "dev", "--datastore", "etcd://u:pw@10.0.0.7:2379")
    path = home / "config.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # URLs may hold passwords
    got = gingham("config", "current-context")
    assert (got.exit_code, got.output) == (1, "error: current-context is not set\n")
    assert gingham("config", "use-context", "dev").output == 'Switched to context "dev".\n'
    assert gingham("config", "current-context").output == "dev\n"
    lines = gingham("config", "get-contexts").stdout.splitlines()
    assert [ln.split() for ln in lines] == [["CURRENT", "NAME", "DATASTORE"],
                                            ["*", "dev", "etcd://u:***@10.0.0.7:2379"],
                                            ["prod", "etcd://10.0.0.6:2379"]]
    assert gingham("config", "get-contexts", "-o", "name").output == "dev\nprod\n"
    shown = gingham("config", "view", "-o", "json").output + gingham("config", "view").output
    assert "pw@" not in shown and "u:***@" in shown
    got = gingham("config", "delete-context", "dev")
    assert got.exit_code == 0 and "was the current context" in got.stderr
    assert gingham("config", "current-context").exit_code == 1
    assert gingham("config", "get-contexts", "-o", "name").output == "prod\n"
    gingham("config", "use-context", "prod")
    assert gingham("config", "unset", "current-context").exit_code == 0
    assert view()["currentContext"] is None


def test_a_malformed_url_or_file_is_one_line(home: Path) -> None:
    got = gingham("config", "set-context", "x", "--datastore", "etcd://[::1")
    assert got.exit_code == 1 and got.output.count("\n") == 1 and "not a host[:port]" in got.output
    assert not (home / "config.yaml").exists()
    for url in ("bogus://x", "etcd://[::1", "sqlite:"):
        got = gingham("--datastore", url, "get", "globalnetworkpolicies")
        assert got.exit_code == 1, got.output
        assert got.output.startswith("error: datastore URL: ") and got.output.count("\n") == 1
        assert "Traceback" not in got.output
    (home / "config.yaml").write_text("contexts:\n- name: a\n\tdatastore: x\n")
    got = gingham("config", "view")
    assert got.exit_code == 1 and got.output.startswith(f"error: {home}/config.yaml:3: not YAML")
    assert got.output.count("\n") == 1
    (home / "config.yaml").write_text("contexts:\n- name: a\n  datastor: sqlite:///a.db\n")
    got = gingham("config", "get-contexts")
    assert got.output == (f"error: {home}/config.yaml: contexts[0].datastor: unknown field "
                          "'datastor' (known: name, datastore)\n")
    # a command that names its datastore does not read the file at all
    got = gingham("--datastore", "sqlite:///nowhere/x.db", "get", "globalnetworkpolicies")
    assert "no gingham datastore at sqlite:///nowhere/x.db" in got.output


def test_config_path_rules() -> None:
    assert config_path({CONFIG_ENV: "/etc/g.yaml", "HOME": "/h"}) == Path("/etc/g.yaml")
    assert config_path({"XDG_CONFIG_HOME": "/x", "HOME": "/h"}) == Path("/x/gingham/config.yaml")
    assert config_path({"XDG_CONFIG_HOME": "rel", "HOME": "/h"}) == Path(
        "/h/.config/gingham/config.yaml")
    assert config_path({}) is None
    assert resolve(None, env={}, run_dir=Path("/nonexistent")).source == "default"
