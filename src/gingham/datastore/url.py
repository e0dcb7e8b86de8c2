"""Datastore URLs: the one parser, so that credentials are found and hidden alike.

The etcd backend takes its endpoints, user and password from ``parse_url``;
``redact_url`` renders the same parse without the password. Were they two
parsers, a password one of them misread (a ``/``, ``#``, ``?`` or ``@`` in
it) would reach the server intact and the logs intact too.

Forms (see ``gingham.datastore``)::

    sqlite:///abs/path.db[?history=N]      sqlite:relative/path.db
    memory://[NAME][?history=N]
    etcd://[USER[:PASSWORD]@]HOST:PORT[,HOST:PORT...][?OPTIONS]   (also etcds, http, https)
    etcd+unix:///abs/dir/NAME:2379[,...][?OPTIONS]

OPTIONS for etcd: ``timeout``, ``cacert``, ``cert``, ``key``, ``user``,
``password``; an unknown one is an error, not ignored. In the user-info
part, ``%XX`` escapes are decoded and any other character is taken as
written, ``@ / ? # :`` included: the user-info ends at the first ``@`` after
which a host list (and options) follows. In the query, ``&`` separates
options and ``+`` is a space, as in any form-encoded query: write ``%26`` and
``%2B`` for those two. The query's user and password win over the
user-info's, and a repeated option's last value wins.

Only the standard library: the CNI plugin imports this on every call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from gingham.errors import ValidationError

ETCD_SCHEMES = ("etcd", "etcds", "etcd+unix", "http", "https")
_OPTIONS: dict[str, frozenset[str]] = {
    "sqlite": frozenset({"history"}),
    "memory": frozenset({"history"}),
    **{s: frozenset({"timeout", "cacert", "cert", "key", "user", "password"}) for s in ETCD_SCHEMES},
}
CREDENTIALS = ("user", "password")
_SECRET_OPTIONS = ("password", "key")  # shown as *** (key: keep even its path private)
HIDDEN = "***"

# host:port, [v6]:port; ports optional (the gateway's default then applies).
_HOST = re.compile(r"(?:[A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


@dataclass(frozen=True)
class DatastoreURL:
    """A parsed datastore URL. ``str()`` and ``repr()`` never show the password."""

    scheme: str  # lower case
    hosts: tuple[str, ...] = ()  # etcd: host:port or absolute socket paths
    path: str = ""  # sqlite: the file; memory: the store's name
    options: tuple[tuple[str, str], ...] = ()  # everything but user and password
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    userinfo: bool = False  # the credentials came (at least partly) as USER:PASSWORD@

    @property
    def is_etcd(self) -> bool:
        return self.scheme in ETCD_SCHEMES

    def option(self, name: str, default: str | None = None) -> str | None:
        return dict(self.options).get(name, default)

    def redacted(self) -> str:
        """The URL for messages and logs: the password (and TLS key path) as ``***``."""
        return self._render(credentials="hidden")

    def public(self) -> str:
        """The URL without user and password at all (they travel separately)."""
        return self._render(credentials="none")

    def secrets(self) -> list[str]:
        """Strings that must never be shown: the password as given and as it may be quoted."""
        return secret_forms(self.password)

    def scrub(self, text: str) -> str:
        """``text`` (a third-party error message, say) with every form of the password hidden."""
        return scrub(text, self.password)

    def __str__(self) -> str:
        return self.redacted()

    def _render(self, *, credentials: str) -> str:
        from urllib.parse import quote

        if not self.is_etcd:
            query = "&".join(f"{k}={v}" for k, v in self.options)
            if self.scheme == "sqlite":
                base = f"sqlite://{self.path}" if self.path.startswith("/") else f"sqlite:{self.path}"
            else:
                base = f"{self.scheme}://{self.path}"
            return base + (f"?{query}" if query else "")
        shown: list[tuple[str, str]] = [
            (k, HIDDEN if k in _SECRET_OPTIONS and credentials == "hidden" else v)
            for k, v in self.options
        ]
        auth = ""
        if credentials == "hidden" and (self.user or self.password):
            if self.userinfo:
                user = quote(self.user or "", safe="")
                auth = f"{user}:{HIDDEN}@" if self.password else f"{user}@"
            else:
                if self.user:
                    shown.append(("user", self.user))
                if self.password:
                    shown.append(("password", HIDDEN))
        query = "&".join(f"{k}={_quote_value(v)}" for k, v in shown)
        return f"{self.scheme}://{auth}{','.join(self.hosts)}" + (f"?{query}" if query else "")


def _quote_value(value: str) -> str:
    if value == HIDDEN:
        return value
    from urllib.parse import quote

    return quote(value, safe="/:,.-_~")


def parse_url(url: str) -> DatastoreURL:
    """Parse ``url``; ValidationError (never quoting a password) if it is not one of ours."""
    scheme, sep, rest = url.partition(":")
    if not sep or not scheme:
        raise ValidationError(
            "not a datastore URL (want sqlite:///path, etcd://host:port or memory://)",
            location="datastore URL",
        )
    scheme = scheme.lower()
    if scheme not in _OPTIONS:
        raise ValidationError(
            f"unknown datastore scheme {scheme!r} (want sqlite, etcd, etcds, etcd+unix or memory)",
            location="datastore URL",
        )
    if scheme in ("sqlite", "memory"):
        return _parse_local(scheme, rest)
    if not rest.startswith("//") or len(rest) == 2:
        raise ValidationError(f"not an etcd URL: {scheme}://... names no endpoint",
                              location="datastore URL")  # fmt: skip
    return _parse_etcd(scheme, rest[2:])


def _parse_local(scheme: str, rest: str) -> DatastoreURL:
    if rest.startswith("//"):
        rest = rest[2:]
    path, _, query = rest.partition("?")
    if scheme == "sqlite" and not path:
        raise ValidationError("sqlite URL without a path", location="datastore URL")
    options = _options(scheme, query)
    return DatastoreURL(scheme, path=path, options=tuple(options))


def _parse_etcd(scheme: str, rest: str) -> DatastoreURL:
    from urllib.parse import unquote

    userinfo: str | None = None
    hosts_part, query = rest, ""
    echo = "@" not in rest and "password" not in rest.lower()
    if scheme == "etcd+unix":
        # Socket paths may hold any character but ',' and '?': no user-info form.
        hosts_part, _, query = rest.partition("?")
    elif echo:
        hosts_part, _, query = rest.partition("?")  # no user-info: nothing to tell apart
    else:
        split = _split_userinfo(scheme, rest)
        if split is None:
            # Nothing fits; say so without echoing what might be a password.
            raise ValidationError(
                "cannot tell user-info from hosts and options in this etcd URL"
                " (want etcd://[USER[:PASSWORD]@]HOST:PORT[,...][?OPTION=VALUE&...];"
                " an unknown option, or a host with odd characters?)",
                location="datastore URL",
            )
        userinfo, hosts_part, query = split
    options = _options(scheme, query, echo=echo)
    creds = {k: v for k, v in options if k in CREDENTIALS}
    kept = tuple((k, v) for k, v in options if k not in CREDENTIALS)
    from_userinfo = False
    if userinfo is not None:
        user, _, password = userinfo.partition(":")
        # The query's user and password win (as the backend always had it).
        if "user" not in creds and user:
            creds["user"] = unquote(user)
            from_userinfo = True
        if "password" not in creds and password:
            creds["password"] = unquote(password)
            from_userinfo = True
    hosts = tuple(h for h in hosts_part.split(",") if h)
    if not hosts:
        raise ValidationError("etcd URL names no endpoint", location="datastore URL")
    for host in hosts:
        if scheme == "etcd+unix":
            if not host.startswith("/"):
                raise ValidationError(
                    f"etcd+unix wants absolute socket paths, got {host!r}",
                    location="datastore URL",
                )
        elif not _HOST.fullmatch(host):
            shown = repr(host) if echo else "(not shown)"
            raise ValidationError(f"not a host[:port]: {shown}", location="datastore URL")
    return DatastoreURL(
        scheme,
        hosts=hosts,
        options=kept,
        user=creds.get("user") or None,
        password=creds.get("password") or None,
        userinfo=from_userinfo,
    )


def _split_userinfo(scheme: str, rest: str) -> tuple[str | None, str, str] | None:
    """(user-info, hosts, query): the first reading whose hosts and options are sound."""
    candidates: list[tuple[str | None, str]] = [(None, rest)]
    candidates += [(rest[:i], rest[i + 1 :]) for i, c in enumerate(rest) if c == "@"]
    for userinfo, remainder in candidates:
        hosts, _, query = remainder.partition("?")
        if not hosts or not all(_HOST.fullmatch(h) for h in hosts.split(",") if h):
            continue
        try:
            _options(scheme, query)
        except ValidationError:
            continue
        return userinfo, hosts, query
    return None


def _options(scheme: str, query: str, *, echo: bool = True) -> list[tuple[str, str]]:
    """The query's options in order, the last of a repeated one winning; unknown ones refused.

    ``echo``: name the offending option in the error. Off when the URL may carry
    a password, since a misplaced ``&`` in one would make a piece of it an "option".
    """
    from urllib.parse import unquote_plus

    known = _OPTIONS[scheme]
    found: dict[str, str] = {}
    for part in query.split("&") if query else []:
        if not part:
            continue
        name, eq, value = part.partition("=")
        name = unquote_plus(name)
        shown = repr(name) if echo else "(not shown: this URL may carry a password)"
        if not eq:
            raise ValidationError(f"option {shown} has no value", location="datastore URL")
        if name not in known:
            raise ValidationError(
                f"unknown option {shown} for {scheme} (known: {', '.join(sorted(known))})",
                location="datastore URL",
            )
        found.pop(name, None)
        found[name] = unquote_plus(value)
    return list(found.items())


def secret_forms(password: str | None) -> list[str]:
    """``password`` as written and as URLs quote it, longest first."""
    if not password:
        return []
    from urllib.parse import quote, quote_plus

    forms = {password, quote(password, safe=""), quote(password), quote_plus(password)}
    return sorted(forms, key=len, reverse=True)


def scrub(text: str, password: str | None) -> str:
    for secret in secret_forms(password):
        text = text.replace(secret, HIDDEN)
    return text


def redact_url(url: str) -> str:
    """``url`` fit for messages and logs: never its password, whatever characters it holds."""
    try:
        return parse_url(url).redacted()
    except ValidationError:
        scheme = url.partition(":")[0] if ":" in url else ""
        # Unparseable: show no part that could be a password.
        return f"{scheme}:<unparseable URL, not shown>" if scheme else "<unparseable URL, not shown>"


def split_credentials(url: str) -> tuple[str, dict[str, str]]:
    """``url`` without user and password, and those two (whichever it had)."""
    parsed = parse_url(url)
    creds = {k: v for k, v in (("user", parsed.user), ("password", parsed.password)) if v}
    return parsed.public(), creds
