"""The redaction prefilter skips only strings that no credential shape can match."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from service.logs import _SHAPES, MASK, redact_text

PIECES = [
    "hvs.",
    "s.",
    "eyJ",
    ".",
    "Bearer ",
    "BASIC ",
    "https://",
    "user:",
    "@",
    '{"auths":',
    '{\\"auths\\":',
    "password=",
    "Client_Secret: ",
    "secret_id=",
    '"token": "',
    "TOKEN=",
    "abcdefghijklmnopqrstuvwxyz0123",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
    " ",
    "tenant-01",
    "k1:3f9c0a1b",
    "\u017fecret=",  # a long s: (?i) matches it as "s", str.lower does not
    "é",
]


def every_shape(text: str) -> str:
    """The reference: every substitution, always."""
    for shape, replacement in _SHAPES:
        text = shape.sub(replacement, text)
    return text


@given(st.lists(st.sampled_from(PIECES), max_size=8).map("".join))
def test_prefiltered_redaction_equals_applying_every_shape(text: str) -> None:
    """Built from credential-shaped pieces or not, the text comes out as if every shape had been applied."""
    assert redact_text(text) == every_shape(text)


@given(st.text(max_size=60))
def test_arbitrary_text_is_redacted_as_by_every_shape(text: str) -> None:
    """Any text at all: the prefilter changes nothing about the result."""
    assert redact_text(text) == every_shape(text)


ONE_OF_EACH_SHAPE = [
    "token hvs.CAESIabcdefghijklmnopqrstuvwxyz here",
    "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
    "Authorization: Bearer abcdefgh12345678",
    "https://robot:hunter2@registry.example",
    '{"auths": {"r.example": {"auth": "x"}}}',
    "retry with password=hunter2",
]


def test_each_shape_is_still_masked() -> None:
    """One sample of every shape: the prefilter lets it through to its substitution."""
    for text in ONE_OF_EACH_SHAPE:
        assert redact_text(text) == every_shape(text) != text


def test_common_values_pass_untouched_and_tokens_do_not() -> None:
    """Names, fingerprints and times come back as they are; a Vault token in a message is masked."""
    for value in ("tenant-01", "reg-t01-s001", "k1:" + "a" * 64, "2026-12-01T22:00:00.123456+00:00", "applied"):
        assert redact_text(value) == value
    assert redact_text("login with hvs.CAESIabcdefghijklmnopqrstuvwxyz failed") == f"login with {MASK} failed"
