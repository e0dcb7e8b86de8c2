"""``gingham selector EXPR [--labels k=v,…]``: try a selector before it goes into a policy.

Exit status: 0 valid (and, with labels, matching), 1 valid but not
matching, 2 invalid (the expression is shown with a caret under the error).
"""

from __future__ import annotations

import click

from gingham.errors import SelectorError
from gingham.selector import parse


def parse_labels(specs: tuple[str, ...]) -> dict[str, str]:
    """``("a=b,c=d", "e=")`` -> ``{"a": "b", "c": "d", "e": ""}``; later keys win."""
    labels: dict[str, str] = {}
    for spec in specs:
        for n, item in enumerate(spec.split(",")):
            if not item.strip():
                continue  # so --labels '' is the empty label set
            key, sep, value = item.partition("=")
            key = key.strip()
            if not sep or not key:
                raise click.BadParameter(
                    f"item {n + 1} {item!r} of {spec!r} is not KEY=VALUE", param_hint="--labels"
                )
            labels[key] = value
    return labels


def caret_lines(expression: str, position: int) -> str:
    # Control characters would shift the caret; show each as one space.
    shown = "".join(" " if c.isspace() else c for c in expression)
    return f"  {shown}\n  {' ' * position}^"


@click.command("selector")
@click.argument("expression")
@click.option(
    "--labels",
    "-L",
    "label_specs",
    multiple=True,
    metavar="K=V[,K=V…]",
    help="Labels to evaluate against (repeatable). Without it only the syntax is checked.",
)
# -l was --labels here, but means a selector in get/delete (kubectl's -l): still read, noted.
@click.option("-l", "old_label_specs", multiple=True, hidden=True)
@click.option("--show-id", is_flag=True, help="Also print the selector's stable id.")
@click.pass_context
def selector_cmd(
    ctx: click.Context, expression: str, label_specs: tuple[str, ...],
    old_label_specs: tuple[str, ...], show_id: bool,
) -> None:
    """Parse EXPRESSION (Calico selector syntax), print its canonical form and,
    with --labels, whether it matches.

    \b
    Exit status:
      0  valid (and, with --labels, matching)
      1  valid, not matching
      2  invalid expression or labels
    """
    if old_label_specs:
        from gingham.cli.common import deprecated

        deprecated("selector -l is deprecated: -l means a label selector in get and delete; "
                   "use -L or --labels", ctx)
        label_specs = old_label_specs + label_specs
    labels = parse_labels(label_specs) if label_specs else None
    try:
        sel = parse(expression)
    except SelectorError as err:
        click.echo(f"error: invalid selector: {err}", err=True)
        click.echo(caret_lines(expression, err.position), err=True)
        ctx.exit(2)
    click.echo(sel.canonical)
    if show_id:
        click.echo(f"id: {sel.id}")
    if labels is None:
        ctx.exit(0)
    if sel.evaluate(labels):
        click.echo("matches")
        ctx.exit(0)
    click.echo("does not match")
    ctx.exit(1)
