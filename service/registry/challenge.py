"""Parse ``WWW-Authenticate`` challenges (RFC 9110 section 11.6.1), a pure function.

A header may hold several challenges (``Basic realm="r", Bearer realm="t",service="s"``),
parameter values may be tokens or quoted strings with commas and backslash escapes
inside, and a scheme may carry a ``token68`` instead of parameters. Scheme and parameter
names are case-insensitive: both are lower-cased here, values are kept as sent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

_TCHARS = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_SCHEME_RE = re.compile(rf"\s*({_TCHARS})")
_PARAM_RE = re.compile(rf"\s*({_TCHARS})\s*=\s*(?:\"((?:[^\"\\]|\\.)*)\"|({_TCHARS}))")
_TOKEN68_RE = re.compile(r"\s*([A-Za-z0-9\-._~+/]+=*)\s*(?:,|$)")
_SEPARATORS_RE = re.compile(r"[\s,]*")
_ESCAPE_RE = re.compile(r"\\(.)")


@dataclass(frozen=True, slots=True)
class Challenge:
    """One authentication challenge: a lower-cased scheme and its parameters."""

    scheme: str
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")

    @property
    def service(self) -> str | None:
        return self.params.get("service")

    @property
    def scope(self) -> str | None:
        return self.params.get("scope")

    @property
    def error(self) -> str | None:
        return self.params.get("error")


def parse_challenges(headers: Iterable[str]) -> list[Challenge]:
    """Every challenge in these ``WWW-Authenticate`` values, in order; malformed tails are dropped."""
    return [challenge for header in headers for challenge in _parse_header(header)]


def _parse_header(text: str) -> list[Challenge]:
    challenges: list[Challenge] = []
    position = _skip_separators(text, 0)
    while position < len(text):
        scheme = _SCHEME_RE.match(text, position)
        if scheme is None:
            break  # not a token where a scheme must start: ignore the rest
        params, position = _parse_params(text, scheme.end())
        challenges.append(Challenge(scheme.group(1).lower(), params))
        position = _skip_separators(text, position)
    return challenges


def _parse_params(text: str, position: int) -> tuple[dict[str, str], int]:
    """Parameters after a scheme, up to the next scheme (a token not followed by '=')."""
    token68 = _TOKEN68_RE.match(text, position)
    if token68 is not None and not _PARAM_RE.match(text, position):
        return {}, token68.end()
    params: dict[str, str] = {}
    while (param := _PARAM_RE.match(text, _skip_separators(text, position))) is not None:
        quoted, bare = param.group(2), param.group(3)
        params.setdefault(param.group(1).lower(), _ESCAPE_RE.sub(r"\1", quoted) if quoted is not None else bare)
        position = param.end()
    return params, position


def _skip_separators(text: str, position: int) -> int:
    match = _SEPARATORS_RE.match(text, position)
    return match.end() if match else position


def preferred(challenges: Iterable[Challenge]) -> Challenge | None:
    """The challenge to answer: Bearer (with a realm) before Basic, as Docker clients do."""
    offered = list(challenges)
    for scheme in ("bearer", "basic"):
        for challenge in offered:
            if challenge.scheme == scheme and (scheme == "basic" or challenge.realm):
                return challenge
    return None
