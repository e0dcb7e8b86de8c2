"""Which datastore a command uses, and why: kubectl-style contexts in a config file.

Resolution, first match wins (:func:`resolve`):

    1. ``--datastore URL``                       source "flag"
    2. ``GINGHAM_DATASTORE``                      source "env"
    3. ``--context NAME``                         source "context-flag"
    4. ``GINGHAM_CONTEXT``                        source "context-env"
    5. the config file's ``current-context``      source "current-context"
    6. the current lab's datastore                source "lab"
    7. ``sqlite:///var/lib/gingham/gingham.db``   source "default"

A context named in 3-5 that the file does not define is an error (listing the
ones it does), never a silent step down to the lab or the default. Steps 1
and 2 do not read the file at all, so a broken file cannot stop a command
that says its datastore.

The file (``$GINGHAM_CONFIG``, else ``$XDG_CONFIG_HOME/gingham/config.yaml``,
else ``~/.config/gingham/config.yaml``)::

    apiVersion: gingham/v1
    kind: Config
    current-context: prod
    contexts:
    - name: prod
      datastore: etcd://10.0.0.5:2379

It may hold datastore passwords: it is written 0600 in a 0700 directory, and
everything printed from it goes through ``redact_url``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from gingham.errors import ValidationError
from gingham.hostfiles import lab_run_dir
from gingham.names import (
    CONFIG_ENV,
    CONFIG_FILE,
    CONTEXT_ENV,
    DATASTORE_ENV,
    DEFAULT_DATASTORE_URL,
)

API_VERSION: Final = "gingham/v1"
KIND: Final = "Config"
_TOP_KEYS: Final = ("apiVersion", "kind", "current-context", "contexts")
_CONTEXT_KEYS: Final = ("name", "datastore")
SOURCES: Final = ("flag", "env", "context-flag", "context-env", "current-context", "lab",
                  "default")


# ----------------------------------------------------------------- the file


def config_path(env: Mapping[str, str] | None = None) -> Path | None:
    """Where the config file is (it need not exist); None without any home to put it in."""
    environ = os.environ if env is None else env
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV])
    xdg = environ.get("XDG_CONFIG_HOME", "")
    if xdg and os.path.isabs(xdg):  # the XDG spec: a relative value is to be ignored
        return Path(xdg) / CONFIG_FILE
    home = environ.get("HOME")
    return Path(home) / ".config" / CONFIG_FILE if home else None


@dataclass
class Config:
    """The config file's content: contexts by name (name -> datastore URL), the current one."""

    path: Path | None
    contexts: dict[str, str] = field(default_factory=dict)
    current: str | None = None

    def known(self) -> str:
        return ", ".join(sorted(self.contexts)) or "none"

    def get(self, name: str, how: str) -> str:
        """The URL of context ``name`` (asked for by ``how``), or a clear error."""
        if name in self.contexts:
            return self.contexts[name]
        where = self.path if self.path is not None else "the config file (no HOME to find it)"
        hint = "" if self.contexts else " (make one: gingham config set-context NAME --datastore URL)"
        raise ValidationError(f"no context {name!r} in {where}; known contexts: "
                              f"{self.known()}{hint}", how)

    def to_document(self) -> dict[str, Any]:
        return {"apiVersion": API_VERSION, "kind": KIND, "current-context": self.current,
                "contexts": [{"name": n, "datastore": u} for n, u in sorted(self.contexts.items())]}


def load_config(path: Path | None) -> Config:
    """The file at ``path``; an absent file is an empty config. Anything in it that is not
    understood is refused, naming the file and the field."""
    if path is None:
        return Config(None)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Config(path)
    except OSError as exc:
        raise ValidationError(f"cannot read it: {exc.strerror}", str(path)) from None
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ValidationError(f"not YAML: {problem}", where) from None
    return parse_config(doc, path)


def parse_config(doc: Any, path: Path) -> Config:
    if doc is None:
        return Config(path)
    if not isinstance(doc, dict):
        raise ValidationError("expected a mapping (apiVersion, kind, current-context, contexts)",
                              str(path))
    for key in doc:
        if key not in _TOP_KEYS:
            raise ValidationError(f"unknown field {key!r} (known: {', '.join(_TOP_KEYS)})",
                                  f"{path}: {key}")
    for key, want in (("apiVersion", API_VERSION), ("kind", KIND)):
        if key in doc and doc[key] != want:
            raise ValidationError(f"must be {want!r}, not {doc[key]!r}", f"{path}: {key}")
    entries = doc.get("contexts") or []
    if not isinstance(entries, list):
        raise ValidationError("expected a list of {name, datastore}", f"{path}: contexts")
    config = Config(path)
    for i, entry in enumerate(entries):
        where = f"{path}: contexts[{i}]"
        if not isinstance(entry, dict):
            raise ValidationError("expected a mapping with name and datastore", where)
        for key in entry:
            if key not in _CONTEXT_KEYS:
                raise ValidationError(f"unknown field {key!r} (known: name, datastore)",
                                      f"{where}.{key}")
        name, url = entry.get("name"), entry.get("datastore")
        if not isinstance(name, str) or not name:
            raise ValidationError("a non-empty string is required", f"{where}.name")
        if not isinstance(url, str) or not url:
            raise ValidationError("a datastore URL is required", f"{where}.datastore")
        if name in config.contexts:
            raise ValidationError(f"context {name!r} is defined twice", f"{where}.name")
        config.contexts[name] = url
    current = doc.get("current-context")
    if current is not None and (not isinstance(current, str) or not current):
        raise ValidationError("expected a context name", f"{path}: current-context")
    config.current = current or None
    return config


def save_config(config: Config) -> None:
    """Write the file whole (a reader never sees half of it), 0600: URLs may hold passwords."""
    import yaml

    if config.path is None:
        raise ValidationError(f"no place for the config file: set {CONFIG_ENV} or HOME", "config")
    path = config.path
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("# gingham CLI configuration: edit with `gingham config ...`\n")
            yaml.safe_dump(config.to_document(), f, sort_keys=False, default_flow_style=False)
        os.replace(tmp, path)
    except OSError as exc:
        raise ValidationError(f"cannot write it: {exc.strerror}", str(path)) from None


# ----------------------------------------------------------------- resolution


@dataclass(frozen=True)
class Resolved:
    """The datastore URL a command uses and where it came from (one of :data:`SOURCES`)."""

    url: str
    source: str
    context: str | None = None  # the context's name (sources context-*, current-context)
    lab: str | None = None  # the lab's name (source lab)
    config_file: Path | None = None

    @property
    def fallback(self) -> bool:
        """Nobody chose it: the current lab's or the built-in default."""
        return self.source in ("lab", "default")

    def describe(self) -> str:
        """Where it came from, in words."""
        return {
            "flag": "the --datastore flag",
            "env": f"the environment variable {DATASTORE_ENV}",
            "context-flag": f"context {self.context!r} (--context)",
            "context-env": f"context {self.context!r} ({CONTEXT_ENV})",
            "current-context": f"context {self.context!r}, the current context of "
                               f"{self.config_file}",
            "lab": f"the current lab {self.lab!r} (no --datastore, {DATASTORE_ENV} or "
                   "context set)",
            "default": f"the built-in default (no --datastore, {DATASTORE_ENV}, context or "
                       "lab set)",
        }[self.source]  # fmt: skip

    def note(self) -> str:
        """The line a command prints on stderr when it falls back (see ``fallback``)."""
        from gingham.datastore import redact_url

        shown = redact_url(self.url)
        if self.source == "lab":
            return (f"note: using the datastore of lab {self.lab!r}, {shown} (no --datastore, "
                    f"{DATASTORE_ENV} or context set)")
        return (f"note: using the default datastore {shown} (no --datastore, {DATASTORE_ENV}, "
                "context or lab set)")


def current_lab(run_dir: Path | None = None) -> tuple[str, str] | None:
    """(name, datastore URL) of the current lab, if a lab is up (its state readable)."""
    from gingham.lab import state as labstate

    run_dir = lab_run_dir() if run_dir is None else run_dir
    name = labstate.current_name(run_dir)
    if name is None or "/" in name:
        return None
    try:
        state = json.loads((labstate.lab_dir(name, run_dir) / "state.json").read_text())
    except (OSError, ValueError):
        return None
    url = state.get("datastore") if isinstance(state, dict) else None
    return (name, url) if isinstance(url, str) and url else None


def resolve(
    explicit: str | None = None,
    context: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    run_dir: Path | None = None,
) -> Resolved:
    """The datastore for a command given ``--datastore`` and ``--context`` (see the module)."""
    environ = os.environ if env is None else env
    if explicit:
        return Resolved(explicit, "flag")
    if environ.get(DATASTORE_ENV):
        return Resolved(environ[DATASTORE_ENV], "env")
    wanted = [(context, "context-flag", "--context"),
              (environ.get(CONTEXT_ENV), "context-env", CONTEXT_ENV)]
    path = config_path(environ)
    config: Config | None = None
    for name, source, how in wanted:
        if name:
            config = config or load_config(path)
            return Resolved(config.get(name, how), source, context=name, config_file=path)
    config = load_config(path)
    if config.current is not None:
        url = config.get(config.current, f"{path}: current-context")
        return Resolved(url, "current-context", context=config.current, config_file=path)
    lab = current_lab(lab_run_dir(dict(environ)) if run_dir is None else run_dir)
    if lab is not None:
        return Resolved(lab[1], "lab", lab=lab[0], config_file=path)
    return Resolved(DEFAULT_DATASTORE_URL, "default", config_file=path)
