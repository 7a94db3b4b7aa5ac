"""WWW-Authenticate parsing: schemes, parameters, quoting, several challenges in one header."""

from __future__ import annotations

import pytest

from service.registry.challenge import Challenge, parse_challenges, preferred


def test_bearer_challenge_of_docker_hub() -> None:
    """realm, service and scope come out of Docker Hub's Bearer challenge."""
    header = 'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"'
    [challenge] = parse_challenges([header])
    assert challenge.scheme == "bearer"
    assert challenge.realm == "https://auth.docker.io/token"
    assert challenge.service == "registry.docker.io"
    assert challenge.scope == "repository:library/alpine:pull"


def test_basic_challenge_of_distribution() -> None:
    """distribution's htpasswd challenge is Basic with a realm."""
    assert parse_challenges(['Basic realm="basic-realm"']) == [Challenge("basic", {"realm": "basic-realm"})]


def test_comma_inside_quoted_value_does_not_split() -> None:
    """A scope with two actions keeps its comma: the comma is inside quotes."""
    [challenge] = parse_challenges(['Bearer realm="https://a/token",scope="repository:team/app:pull,push"'])
    assert challenge.scope == "repository:team/app:pull,push"


def test_escaped_quote_inside_value() -> None:
    """Backslash escapes inside a quoted string are undone."""
    [challenge] = parse_challenges([r'Basic realm="say \"hi\", then \\ go"'])
    assert challenge.realm == 'say "hi", then \\ go'


def test_scheme_and_names_are_case_insensitive_values_are_not() -> None:
    """Scheme and parameter names are lower-cased; values keep their case."""
    [challenge] = parse_challenges(['BEARER Realm="https://Auth.Example/Token", SERVICE=Registry'])
    assert challenge.scheme == "bearer"
    assert challenge.params == {"realm": "https://Auth.Example/Token", "service": "Registry"}


def test_several_challenges_in_one_header() -> None:
    """'Basic realm=..., Bearer realm=...' holds two challenges."""
    header = 'Basic realm="b", Bearer realm="https://t/token",service="s",error="invalid_token"'
    basic, bearer = parse_challenges([header])
    assert basic == Challenge("basic", {"realm": "b"})
    assert bearer.params == {"realm": "https://t/token", "service": "s", "error": "invalid_token"}


def test_challenges_across_header_lines_and_token68() -> None:
    """Each header line is parsed; a token68 scheme has no parameters."""
    challenges = parse_challenges(["Negotiate abc+/def==", 'Bearer realm="https://t/token"'])
    assert [c.scheme for c in challenges] == ["negotiate", "bearer"]
    assert challenges[0].params == {}


def test_bare_scheme_then_another() -> None:
    """A scheme with no parameters, followed by another challenge."""
    assert [c.scheme for c in parse_challenges(['Basic, Bearer realm="https://t/token"'])] == ["basic", "bearer"]


def test_first_value_of_a_repeated_parameter_wins() -> None:
    """A repeated parameter does not override the first one."""
    [challenge] = parse_challenges(['Bearer realm="https://first/token", realm="https://second/token"'])
    assert challenge.realm == "https://first/token"


@pytest.mark.parametrize("header", ["", "   ", ",,", '"quoted"', "=oops"])
def test_empty_or_malformed_headers_give_no_challenge(header: str) -> None:
    """Garbage parses to nothing rather than raising."""
    assert parse_challenges([header]) == []


def test_malformed_tail_is_dropped_and_head_kept() -> None:
    """What parses before a malformed part is kept."""
    [challenge] = parse_challenges(['Bearer realm="https://t/token", "junk'])
    assert challenge.realm == "https://t/token"


def test_preferred_takes_bearer_over_basic() -> None:
    """With both offered, the token flow is used, as docker clients do."""
    challenges = parse_challenges(['Basic realm="b", Bearer realm="https://t/token"'])
    assert preferred(challenges) == challenges[1]


def test_preferred_ignores_bearer_without_realm_and_unknown_schemes() -> None:
    """A Bearer challenge without a realm cannot be answered; Negotiate is not supported."""
    assert preferred(parse_challenges(["Bearer service=x", "Negotiate abc"])) is None
    assert preferred(parse_challenges(["Bearer service=x", 'Basic realm="r"'])) == Challenge("basic", {"realm": "r"})
