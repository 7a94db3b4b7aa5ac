"""AI Core's secret name rule, as ``service.config.secret_name_problem`` applies it."""

from __future__ import annotations

import itertools
import re
import time

import pytest

from service.model import secret_name_problem

# The spec's pattern, verbatim, for comparison on short names only (it backtracks exponentially).
SPEC_PATTERN = re.compile(r"[a-z0-9](?:_?[a-z0-9\.\-]+)*[a-z0-9]")


@pytest.mark.parametrize("name", ["my-registry", "a.b-c", "ab_cd", "a_b.c_de", "0000", "x" * 63])
def test_valid_names_pass(name: str) -> None:
    """Names the spec's pattern accepts, 4 to 63 characters long, have no problem."""
    assert secret_name_problem(name) is None


@pytest.mark.parametrize(
    "name",
    ["abc", "x" * 64, "My-registry", "-abc", "abc-", "ab__cd", "abc_", "_abc", "abc_d", "ab c", "abcd\n", "ab/cd"],
)
def test_invalid_names_are_named_in_the_problem(name: str) -> None:
    """Short, long, upper-case, edge punctuation, double underscore, newline or slash: refused, naming the name."""
    problem = secret_name_problem(name)
    assert problem is not None
    assert repr(name) in problem


def test_rule_matches_the_spec_pattern_on_every_short_name() -> None:
    """Over a small alphabet, every name of 4 to 6 characters is accepted exactly when the spec's pattern accepts it."""
    for length in range(4, 7):
        for chars in itertools.product("a1._-A", repeat=length):
            name = "".join(chars)
            assert (secret_name_problem(name) is None) == bool(SPEC_PATTERN.fullmatch(name)), name


def test_long_adversarial_name_is_refused_quickly() -> None:
    """A 63-character name that fails only at its last character is refused at once (no backtracking blow-up)."""
    started = time.perf_counter()
    assert secret_name_problem("a" * 62 + "!") is not None
    assert time.perf_counter() - started < 0.1
