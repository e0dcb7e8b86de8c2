"""``--dry-run`` on the writing verbs, in kubectl's spellings as well as the bare flag.

kubectl users type ``--dry-run=server`` (and scripts carry it). gingham's dry
run always reads the datastore (validation, existence, resourceVersion), which
is kubectl's ``server`` mode, so ``--dry-run=server`` is the bare flag and
``--dry-run=none`` no dry run; ``--dry-run=client`` (no datastore at all) is
refused by name rather than quietly run against the datastore.
"""

from __future__ import annotations

import click

DRY_RUN_OPTION = click.option(
    "--dry-run",
    is_flag=True,
    help="Read and check everything (validation, existence, resourceVersion), write"
    " nothing; the output says (dry run). --dry-run=server is the same.",
)


class DryRunCommand(click.Command):
    """A command whose ``--dry-run`` flag also takes kubectl's ``=server|none`` forms."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        rewritten: list[str] = []
        for index, arg in enumerate(args):
            if arg == "--":
                rewritten.extend(args[index:])
                break
            if not arg.startswith("--dry-run="):
                rewritten.append(arg)
                continue
            mode = arg.partition("=")[2]
            if mode == "server":
                rewritten.append("--dry-run")
            elif mode == "client":
                raise click.UsageError(
                    "--dry-run=client: gingham has no client-only dry run; --dry-run checks"
                    " against the datastore (kubectl's --dry-run=server), and"
                    " 'gingham validate -f FILE' checks manifests offline",
                    ctx,
                )
            elif mode != "none":
                raise click.UsageError(
                    f"--dry-run={mode}: expected --dry-run, --dry-run=server or --dry-run=none",
                    ctx,
                )
        return super().parse_args(ctx, rewritten)
