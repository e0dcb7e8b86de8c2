"""Manifests in: ``-f FILE|DIR|-`` (with ``-R``) read, parsed and validated in full.

A directory contributes every ``*.yaml``, ``*.yml`` and ``*.json`` in it, in
sorted order; ``-R`` descends into its sub-directories too (sorted, depth
first), as kubectl does. Every problem of every file is reported before the
command gives up, so one run shows all there is to fix.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from gingham.cli.common import fail

F = TypeVar("F", bound=Callable[..., Any])

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")

FILE_OPTION = click.option(
    "-f",
    "--filename",
    "files",
    multiple=True,
    type=click.Path(allow_dash=True),
    help="YAML or JSON manifest file, or a directory of them (*.yaml, *.yml, *.json);"
    " '-' reads standard input. May be repeated.",
)
RECURSIVE_OPTION = click.option(
    "-R",
    "--recursive",
    is_flag=True,
    help="With -f DIR: also the files in its sub-directories.",
)


def manifest_options(fn: F) -> F:
    """``-f`` and ``-R``, which always come together."""
    return FILE_OPTION(RECURSIVE_OPTION(fn))


def read_text(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise fail(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise fail(
            f"cannot read {path}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None


def expand_paths(files: Sequence[str], recursive: bool) -> list[str]:
    """Each ``-f`` as the files it names: a file (or ``-``) as itself, a directory as its
    manifests in sorted order (sub-directories too with ``recursive``)."""
    paths: list[str] = []
    for path in files:
        if path == "-" or not os.path.isdir(path):
            paths.append(path)
            continue
        found = _directory_manifests(path, recursive)
        if not found:
            where = "under" if recursive else "in"
            raise fail(
                f"{path}: no {', '.join('*' + s for s in MANIFEST_SUFFIXES)} files {where} it"
                + ("" if recursive else " (-R descends into sub-directories)")
            )
        paths.extend(found)
    return paths


def _directory_manifests(top: str, recursive: bool) -> list[str]:
    found: list[str] = []
    for directory, subdirs, names in os.walk(top, onerror=_unreadable):
        subdirs.sort()
        if not recursive:
            subdirs.clear()
        found.extend(
            os.path.join(directory, name)
            for name in sorted(names)
            if name.endswith(MANIFEST_SUFFIXES)
            and os.path.isfile(os.path.join(directory, name))
        )
    return found


def _unreadable(exc: OSError) -> None:
    raise fail(f"cannot read {exc.filename}: {exc.strerror}")


def load_files(files: Sequence[str], namespace: str | None, recursive: bool = False) -> list[Any]:
    """Every resource of every file, or exit 1 listing every problem (file: doc N: path: …)."""
    return [r for _, r in load_files_with_origins(files, namespace, recursive)]


def load_files_with_origins(
    files: Sequence[str], namespace: str | None, recursive: bool = False
) -> list[tuple[str, Any]]:
    """As ``load_files``, each resource with where it came from (``FILE: resource N``)."""
    from gingham.model import ManifestError, load_manifests

    if not files:
        raise fail("no input: give -f FILE (or -f DIR, or -f - for standard input)")
    resources: list[tuple[str, Any]] = []
    problems: list[str] = []
    for path in expand_paths(files, recursive):
        name = "<stdin>" if path == "-" else path
        try:
            loaded = load_manifests(read_text(path))
        except ManifestError as exc:
            problems.extend(f"{name}: {p}" for p in exc.problems)
            continue
        if not loaded:
            problems.append(f"{name}: no resources found")
        for index, resource in enumerate(loaded):
            ns = resource.metadata.namespace
            if namespace and ns and ns != namespace and _namespaced(resource):
                problems.append(
                    f"{name}: resource {index + 1} ({resource.kind} {resource.metadata.name}):"
                    f" metadata.namespace: {ns!r} differs from --namespace {namespace!r}"
                )
            resources.append((f"{name}: resource {index + 1}", resource))
    if problems:
        for line in problems:
            click.echo(f"error: {line}", err=True)
        click.echo("error: nothing was written", err=True)
        raise click.exceptions.Exit(1)
    return resources


def _namespaced(resource: Any) -> bool:
    from gingham.model import kind_info

    return bool(kind_info(resource.kind, resource.api_version).namespaced)
