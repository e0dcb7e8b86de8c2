"""``gingham completion bash|zsh|fish``, and what completes KIND and NAME arguments.

The scripts are click's own: the shell runs ``gingham`` again with
``_GINGHAM_COMPLETE=<shell>_complete`` and the words typed so far, and click
answers from the command tree. Kinds complete from the model's kind registry
(kind, plural and short names); resource names from the datastore the command
would use. Completion is fail-soft: a datastore that is missing, unreachable
or slow gives no names, never an error or a traceback in the middle of a
command line.

``attach`` hooks the two callbacks onto the KIND/NAME arguments of the
resource verbs; ``main.LazyGroup`` calls it as it loads each command, so the
modules defining those commands stay unaware of completion.
"""

from __future__ import annotations

import threading
from typing import Any

import click
from click.shell_completion import CompletionItem, get_completion_class

# What click reads to run a completion instead of the command (from the program name).
COMPLETE_ENV = "_GINGHAM_COMPLETE"
SHELLS = ("bash", "zsh", "fish")
# The commands whose ``kind`` argument names a kind and whose ``name``/``names``
# argument names resources of it; a verb that does not exist (yet) is skipped.
RESOURCE_VERBS = ("get", "delete", "label", "patch")
# Names come from the datastore; a completion that waits longer is worse than none.
NAME_TIMEOUT = 2.0


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS), metavar="SHELL")
@click.pass_context
def completion_cmd(ctx: click.Context, shell: str) -> None:
    """Print the shell completion script for SHELL (commands, flags, kinds, resource names)."""
    root = ctx.find_root()
    cls = get_completion_class(shell)
    if cls is None:  # click knows every shell in SHELLS; guard its registry all the same
        raise click.UsageError(f"no completion for shell {shell!r}")
    prog = root.info_name or "gingham"
    click.echo(cls(root.command, {}, prog, COMPLETE_ENV).source())


def kind_words() -> list[str]:
    """Every spelling of every kind: ``GlobalNetworkPolicy``, ``globalnetworkpolicies``, ``gnp``."""
    from gingham.model.registry import all_kinds

    words: set[str] = set()
    for info in all_kinds():
        words.update((info.name, info.kind, info.plural, *info.short_names))
    return sorted(words)


def complete_kind(ctx: click.Context, param: click.Parameter,
                  incomplete: str) -> list[CompletionItem]:  # fmt: skip
    """Kinds starting with what was typed (case as typed: ``glob`` gives the lower-case forms,
    ``Glob`` the kind names); after ``KIND/`` the names of that kind (``gnp/alpha``)."""
    if "/" in incomplete:
        kind, _, partial = incomplete.partition("/")
        return [CompletionItem(f"{kind}/{n}") for n in names_of(ctx, kind) if n.startswith(partial)]
    try:
        words = kind_words()
    except Exception:  # never a traceback in the middle of a command line
        return []
    return [CompletionItem(w) for w in words if w.startswith(incomplete)]


def complete_name(ctx: click.Context, param: click.Parameter,
                  incomplete: str) -> list[CompletionItem]:  # fmt: skip
    """Names of the KIND given earlier on the line, read from the command's datastore
    (``-n NS`` or ``default`` for namespaced kinds; every namespace with ``-A``)."""
    kind = ctx.params.get("kind")
    if not isinstance(kind, str) or not kind or "/" in kind:
        return []
    given = ctx.params.get(param.name or "")
    taken = set(given) if isinstance(given, tuple | list) else set()
    return [CompletionItem(n) for n in names_of(ctx, kind)
            if n.startswith(incomplete) and n not in taken]  # fmt: skip


def complete_kind_then_name(ctx: click.Context, param: click.Parameter,
                            incomplete: str) -> list[CompletionItem]:  # fmt: skip
    """For a verb that takes its operands as one list (``label KIND NAME k=v...``): a kind
    first, then a name of it; the rest (labels) is the operator's to type."""
    given = ctx.params.get(param.name or "") or ()
    if not given:
        return complete_kind(ctx, param, incomplete)
    if len(given) == 1 and "/" not in given[0]:
        return [CompletionItem(n) for n in names_of(ctx, given[0]) if n.startswith(incomplete)]
    return []


def names_of(ctx: click.Context, kind: str) -> list[str]:
    """Names of ``kind`` in the command's datastore; none if it cannot be read in time."""
    found: list[list[str]] = []

    def read() -> None:
        try:
            found.append(_names(ctx, kind))
        except Exception:  # unreachable, missing, unreadable, unknown kind: no names
            found.append([])

    # A daemon thread: a datastore that does not answer must not hold the shell up.
    worker = threading.Thread(target=read, daemon=True)
    worker.start()
    worker.join(NAME_TIMEOUT)
    return found[0] if found else []


def _names(ctx: click.Context, kind: str) -> list[str]:
    from gingham.cli.common import context_datastore_url
    from gingham.datastore import open_datastore
    from gingham.datastore.resources import InvalidStoredResource, ResourceStore

    root = ctx.find_root()
    # While completing, click parses but runs no callback: hand the root's options
    # (--datastore, ...) to the shared resolution the way the root command would have,
    # and keep its notes off stderr, which is the user's command line now.
    obj = root.ensure_object(dict)
    obj.update({k: v for k, v in root.params.items() if v is not None})
    obj["quiet"] = True
    info = ResourceStore.info(kind)
    namespace = ctx.params.get("namespace")
    ns = None if ctx.params.get("all_namespaces") else (namespace or "default")
    ds = open_datastore(context_datastore_url(ctx), create=False)
    try:
        items = ResourceStore(ds, default_namespace=namespace or "default").list_any(info, ns)
    finally:
        ds.close()
    names = {r.name if isinstance(r, InvalidStoredResource) else r.metadata.name for r in items}
    return sorted(names)


def attach(command: click.Command, path: str) -> None:
    """Complete KIND and NAME(S) of the resource verb at ``path`` (no-op for other commands)."""
    if path not in RESOURCE_VERBS:
        return
    hooks: dict[str, Any] = {"kind": complete_kind, "name": complete_name,
                             "names": complete_name, "args": complete_kind_then_name}  # fmt: skip
    for param in command.params:
        hook = hooks.get(param.name or "")
        if isinstance(param, click.Argument) and hook is not None:
            param._custom_shell_complete = hook
