"""``gingham datastore init|info``: the explicit way to make a datastore, and what is in use."""

from __future__ import annotations

import json
import stat
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gingham.cli.main import cli
from gingham.datastore import Datastore, keys, open_datastore
from gingham.datastore.cluster import read_cluster_id


def gingham(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def test_init_creates_once_and_prints_the_cluster_id(tmp_path: Path) -> None:
    path = tmp_path / "state" / "g.db"
    url = f"sqlite://{path}"
    first = gingham("datastore", "init", "--datastore", url)
    assert first.exit_code == 0, first.output
    cluster_id = first.stdout.strip()
    assert str(uuid.UUID(cluster_id)) == cluster_id
    assert f"initialised datastore {url}" in first.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    # Idempotent, and the root option works the same.
    again = gingham("--datastore", url, "datastore", "init")
    assert again.exit_code == 0, again.output
    assert again.stdout.strip() == cluster_id
    assert "already initialised" in again.stderr
    with open_datastore(url) as ds:
        assert read_cluster_id(ds) == cluster_id


def test_info_shows_url_cluster_id_and_revision(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'g.db'}"
    cluster_id = gingham("datastore", "init", "--datastore", url).stdout.strip()
    for command in ("info", "status"):
        result = gingham("--datastore", url, "datastore", command)
        assert result.exit_code == 0, result.output
        assert f"URL:        {url}" in result.stdout
        assert f"cluster ID: {cluster_id}" in result.stdout
        assert "revision:   2" in result.stdout
    doc = json.loads(gingham("datastore", "info", "-o", "json", "--datastore", url).stdout)
    assert doc == {"url": url, "clusterID": cluster_id, "revision": 2}


def test_info_on_a_missing_datastore_creates_nothing(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'typo.db'}"
    result = gingham("datastore", "info", "--datastore", url)
    assert result.exit_code == 1
    assert f"gingham datastore init --datastore {url}" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_init_refuses_a_file_that_is_something_else(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a database\n" * 100)
    result = gingham("datastore", "init", "--datastore", f"sqlite://{path}")
    assert result.exit_code == 1
    assert "not an sqlite database" in result.stderr
    assert path.read_text() == "not a database\n" * 100


def test_info_reports_a_malformed_cluster_id(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'g.db'}"
    with open_datastore(url, create=True) as ds:
        ds.put_raw(keys.CLUSTER, b"garbage")
    result = gingham("datastore", "info", "--datastore", url)
    assert result.exit_code == 0, result.output
    assert "cluster ID: (none)" in result.stdout
    assert "malformed (not JSON" in result.stderr


@pytest.mark.integration
@pytest.mark.etcd
def test_init_and_info_on_etcd(etcd_store: Datastore, etcd_server: str) -> None:
    etcd_store.delete(keys.CLUSTER)  # a server nobody initialised
    url = etcd_server + "?timeout=5"
    before = gingham("--datastore", url, "datastore", "info")
    assert before.exit_code == 0, before.output
    assert "cluster ID: (none)" in before.stdout and "not initialised" in before.stderr
    init = gingham("--datastore", url, "datastore", "init")
    assert init.exit_code == 0, init.output
    after = gingham("--datastore", url, "datastore", "info")
    assert f"cluster ID: {init.stdout.strip()}" in after.stdout
    assert f"URL:        {url}" in after.stdout
    again = gingham("--datastore", url, "datastore", "init")
    assert again.stdout == init.stdout and "already initialised" in again.stderr
