"""Fixtures for routing integration tests."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator, Sequence

import pytest

from gingham.lab.fabric import Fabric, build_fabric, destroy_fabric

_labs = itertools.count(1)


@pytest.fixture
def make_fabric() -> Iterator[Callable[[Sequence[int]], Fabric]]:
    """``make_fabric([0, 0, 1])``: hosts h1, h2 on subnet 1 and h3 on subnet 2; destroyed at teardown."""
    made: list[str] = []

    def make(layout: Sequence[int]) -> Fabric:
        lab = f"rt{os.getpid()}x{next(_labs)}"
        made.append(lab)
        return build_fabric(lab, hosts=len(layout), subnets=max(layout) + 1, layout=layout)

    try:
        yield make
    finally:
        for lab in made:
            destroy_fabric(lab)


@pytest.fixture(autouse=True)
def _close_topologies() -> Iterator[None]:
    from tests.integration.routing import topo

    try:
        yield
    finally:
        while topo.OPEN:
            topo.OPEN.pop().close()
