"""The one rule for label keys and values, shared by selectors and the model.

Kubernetes' rules, which Calico applies to the labels of its resources: a key
is a qualified name, ``[prefix/]name``, where the optional prefix is a DNS
subdomain of at most 253 characters and the name 1-63 letters, digits, ``-``,
``_`` or ``.``, starting and ending with a letter or digit; a value is empty
or like a name. A selector that names a key no label can have could never
match, so the parser refuses it with the same words as ``metadata.labels``.

gingham copies labels onto endpoints under a prefix of its own (a namespace's
labels under ``pcns.``, a service account's under ``pcsa.``, as Calico does);
such a copy is as valid as the label it copies, even where the five extra
characters take its name part past 63, so :func:`selector_key_problem` allows
it.
"""

from __future__ import annotations

import re
from typing import Final

from gingham.names import NAMESPACE_LABEL_PREFIX, SERVICE_ACCOUNT_LABEL_PREFIX

MAX_PREFIX: Final = 253
MAX_NAME: Final = 63

_DNS_LABEL: Final = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
SUBDOMAIN_RE: Final = re.compile(rf"^{_DNS_LABEL}(\.{_DNS_LABEL})*$")
LABEL_NAME_RE: Final = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_COPY_PREFIXES: Final = (NAMESPACE_LABEL_PREFIX, SERVICE_ACCOUNT_LABEL_PREFIX)


def shown(text: str, limit: int = 80) -> str:
    """``text`` quoted for a message; a long one cut, with its length."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit - 20]!r}... ({len(text)} characters)"


def label_key_problem(key: str) -> str | None:
    """What is wrong with ``key`` as a label key (Kubernetes' qualified name), or None."""
    prefix, slash, name = key.rpartition("/")
    if slash:
        if "/" in prefix:
            return f"invalid label key {shown(key)}: at most one '/' (prefix/name)"
        if not prefix or len(prefix) > MAX_PREFIX or not SUBDOMAIN_RE.match(prefix):
            return (f"invalid label key {shown(key)}: prefix must be a DNS subdomain "
                    f"(lower-case letters, digits, '-' and '.', at most {MAX_PREFIX} "
                    f"characters){_length(prefix, MAX_PREFIX)}")
    if not name or len(name) > MAX_NAME or not LABEL_NAME_RE.match(name):
        return (f"invalid label key {shown(key)}: name part must be 1-{MAX_NAME} letters, "
                "digits, '-', '_' or '.', starting and ending with a letter or digit"
                f"{_length(name, MAX_NAME)}")
    return None


def _length(part: str, limit: int) -> str:
    return f"; it has {len(part)} characters" if len(part) > limit else ""


def selector_key_problem(key: str) -> str | None:
    """:func:`label_key_problem`, but a ``pcns.``/``pcsa.`` copy of a valid key is valid."""
    problem = label_key_problem(key)
    if problem is None:
        return None
    for prefix in _COPY_PREFIXES:
        if key.startswith(prefix) and label_key_problem(key[len(prefix):]) is None:
            return None
    return problem


def label_value_problem(value: str) -> str | None:
    """What is wrong with ``value`` as a label value, or None."""
    if value and (len(value) > MAX_NAME or not LABEL_NAME_RE.match(value)):
        return (f"invalid label value {shown(value)}: at most {MAX_NAME} letters, digits, "
                "'-', '_' or '.', starting and ending with a letter or digit")
    return None
