"""``gingham version``: this program's version, for scripts (``-o json``) and bug reports."""

from __future__ import annotations

import json
import platform

import click

from gingham import __version__


@click.command("version")
@click.option("-o", "--output", default="text", type=click.Choice(["text", "json"]),
              help="text (one line) or json.")
def version_cmd(output: str) -> None:
    """Print gingham's version (also: gingham --version).
    """
    if output == "json":
        click.echo(json.dumps({"version": __version__, "python": platform.python_version()}))
    else:
        click.echo(f"gingham {__version__} (python {platform.python_version()})")
