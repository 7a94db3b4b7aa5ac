"""The ``Fingerprint`` value: its text form, parsing stored text, and the short form people read."""

from __future__ import annotations

import pytest

from service.model import Fingerprint, fingerprint_text, short_fingerprint

TEXT = "hmac-sha256:k1:" + "0123456789abcdef" * 4


def test_parse_and_print_are_inverse() -> None:
    """A parsed fingerprint prints back to exactly the text it came from."""
    parsed = Fingerprint.parse(TEXT)
    assert (parsed.key_id, parsed.digest) == ("k1", "0123456789abcdef" * 4)
    assert str(parsed) == fingerprint_text(parsed) == TEXT
    assert fingerprint_text(None) is None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "garbage",
        "hmac-sha256:k1",
        "hmac-sha256::" + "a" * 64,  # no key id
        "hmac-sha1:k1:" + "a" * 64,  # another scheme
        "hmac-sha256:k1:short",
        "hmac-sha256:k1:" + "A" * 64,  # we only ever write lowercase hex
        "hmac-sha256:k1:" + "g" * 64,
        "hmac-sha256:k1:" + "a" * 63 + ":",
    ],
)
def test_parse_refuses_what_we_never_write(text: str) -> None:
    """Text that is not hmac-sha256:<key id>:<64 lowercase hex> is a ValueError; read gives None for it."""
    with pytest.raises(ValueError, match="not a fingerprint"):
        Fingerprint.parse(text)
    assert Fingerprint.read(text) is None


def test_read_of_stored_text() -> None:
    """A stored column reads as a fingerprint, or None when empty."""
    assert Fingerprint.read(TEXT) == Fingerprint(key_id="k1", digest="0123456789abcdef" * 4)
    assert Fingerprint.read(None) is None


def test_short_fingerprint() -> None:
    """Tables and lines show the key id and the first 12 hex digits; nothing for none."""
    assert short_fingerprint(Fingerprint.parse(TEXT)) == "k1:0123456789ab"
    assert short_fingerprint(None) is None
