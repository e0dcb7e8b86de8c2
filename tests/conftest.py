"""Shared pytest wiring. Fixtures live in tests/fixtures/, one module per area."""

from __future__ import annotations

import importlib.util
import os
import shutil

import pytest

_FIXTURE_MODULES = ["datastore", "netns", "lab"]
pytest_plugins = [
    f"tests.fixtures.{name}"
    for name in _FIXTURE_MODULES
    if importlib.util.find_spec(f"tests.fixtures.{name}") is not None
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    is_root = os.geteuid() == 0
    for item in items:
        if "integration" in item.keywords and not is_root:
            item.add_marker(pytest.mark.skip(reason="integration tests need root"))
        if "etcd" in item.keywords and shutil.which("etcd") is None:
            item.add_marker(pytest.mark.skip(reason="etcd binary not installed"))
