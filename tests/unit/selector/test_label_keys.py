"""Label keys in selectors follow the one rule of metadata.labels (Kubernetes' qualified names)."""

from __future__ import annotations

import pytest

from gingham.errors import SelectorError
from gingham.model import ManifestError, parse_resource
from gingham.names import NAMESPACE_LABEL_PREFIX, SERVICE_ACCOUNT_LABEL_PREFIX
from gingham.selector import parse
from gingham.selector.labels import label_key_problem, selector_key_problem

PREFIX_253 = ".".join(["a" * 63] * 4)[:253].rstrip(".")
assert len(PREFIX_253) == 253

# (key, valid): made only of characters the selector tokenizer reads as one key.
KEYS: list[tuple[str, bool]] = [
    ("a", True),
    ("app", True),
    ("x" * 63, True),
    ("x" * 64, False),
    ("app.kubernetes.io/name", True),
    ("projectcalico.org/namespace", True),
    (f"{PREFIX_253}/x", True),
    (f"{PREFIX_253}a/x", False),
    ("example.com/" + "n" * 63, True),
    ("example.com/" + "n" * 64, False),
    ("Example.com/x", False),  # a prefix is lower case
    ("a/b/c", False),
    ("/x", False),
    ("x/", False),
    ("-x", False),
    ("x-", False),
    ("_x", False),
    ("x.", False),
    ("a_b.c-D9", True),
    ("k8s_app", True),
]


@pytest.mark.parametrize(("key", "valid"), KEYS)
def test_selector_and_metadata_labels_use_one_rule(key: str, valid: bool) -> None:
    problem = label_key_problem(key)
    assert (problem is None) is valid
    for expr in (f"has({key})", f"{key} == 'v'", f"has(a) && {key} in {{'v'}}"):
        if valid:
            parse(expr)
        else:
            with pytest.raises(SelectorError) as info:
                parse(expr)
            assert problem is not None and problem in str(info.value)
            assert info.value.position == expr.index(key)
    labelled = {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkSet",
                "metadata": {"name": "s", "labels": {key: "v"}}}
    if valid:
        parse_resource(labelled)
    else:
        with pytest.raises(ManifestError) as bad:
            parse_resource(labelled)
        assert [p.message for p in bad.value.problems] == [problem]


def test_the_error_names_the_key_and_the_rule() -> None:
    with pytest.raises(SelectorError) as info:
        parse("app == 'web' && " + "k" * 70 + " == 'x'")
    text = str(info.value)
    assert "invalid label key 'kkkk" in text
    assert "name part must be 1-63" in text and "it has 70 characters" in text
    assert info.value.position == len("app == 'web' && ")
    with pytest.raises(SelectorError, match=r"prefix must be a DNS subdomain .*at most 253"):
        parse(f"has({PREFIX_253}a/x)")


def test_a_long_key_is_shortened_in_the_message() -> None:
    key = "k" * 600
    with pytest.raises(SelectorError) as info:
        parse(f"has({key})")
    assert "(600 characters)" in str(info.value)
    assert key not in str(info.value)


@pytest.mark.parametrize("prefix", [NAMESPACE_LABEL_PREFIX, SERVICE_ACCOUNT_LABEL_PREFIX])
def test_copies_of_valid_labels_are_valid_keys(prefix: str) -> None:
    """gingham copies namespace and service-account labels onto endpoints under a prefix;
    a selector over the copy of any valid label parses, even past 63 characters."""
    long_name = prefix + "n" * 63
    assert label_key_problem(long_name) is not None
    assert selector_key_problem(long_name) is None
    parse(f"{long_name} == 'v'")
    parse(f"has({prefix}{PREFIX_253}/x)")
    with pytest.raises(SelectorError, match="name part must be 1-63"):
        parse(f"has({prefix}{'n' * 64})")  # a copy of no valid label
