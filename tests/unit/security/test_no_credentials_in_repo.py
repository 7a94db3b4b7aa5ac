"""No credential sits in the repository's configuration, deployment files or documentation."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SCANNED = ("config", "deploy", "docs", "docker-compose.yml", "README.md")

# Shapes of credentials. Each is a name and a pattern; group "value" (if any) is what is judged.
SHAPES: dict[str, re.Pattern[str]] = {
    "vault token": re.compile(r"\b(?P<value>(?:hv[sbr]|s|b|r)\.[A-Za-z0-9_\-]{20,})"),
    "jwt": re.compile(r"\b(?P<value>eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,})"),
    "private key block": re.compile(r"(?P<value>-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----)"),
    "basic auth in an url": re.compile(r"\b[a-z][a-z0-9+.\-]*://(?P<value>[^\s/:@'\"]+:[^\s/@'\"]+)@"),
    "aws access key": re.compile(r"\b(?P<value>(?:AKIA|ASIA|AGPA|AIDA)[0-9A-Z]{16})\b"),
    "github / slack token": re.compile(r"\b(?P<value>(?:gh[pousr]_[A-Za-z0-9]{30,}|xox[abprs]-[A-Za-z0-9\-]{10,}))"),
    # A key named like a secret (TOML, YAML, JSON, shell, env files) given a literal value;
    # "key: value" only as the whole rest of the line (so prose such as "the token: it ..." passes).
    "password assignment": re.compile(
        r"(?i)(?:^|(?<=[\s'\"\-]))['\"]?(?:password|passwd|secret|token|client_?secret|api_?key|secret_id|access_token"
        r"|[A-Z0-9_]*_(?:PASSWORD|TOKEN|SECRET))['\"]?"
        r"(?:\s*=\s*(?P<value>\$\{[^}]*\}|['\"][^'\"\s{}]{3,}['\"]|[^\s'\"{}\[\],#]{3,})"
        r"|:\s+(?P<value2>\$\{[^}]*\}|['\"][^'\"\s{}]{3,}['\"]|[^\s'\"{}\[\],#]{3,})(?=\s*[,}\]]?\s*(?:\#.*)?$))"
    ),
    "long hex": re.compile(r"(?<![A-Za-z0-9])(?P<value>[0-9a-fA-F]{40,})(?![A-Za-z0-9])"),
    "long base64": re.compile(r"(?<![A-Za-z0-9+/])(?P<value>[A-Za-z0-9+/]{40,}={0,2})(?![A-Za-z0-9+/=])"),
}

# Values a password-shaped assignment may have because they are not values: references,
# interpolations, field names, placeholders the files document as such.
NOT_A_VALUE = re.compile(
    r"""^['"]?(?:
        \$\{[^}]*\}                                   # ${VAR} / ${VAR:-default}: the default is judged below
      | \$[A-Za-z_][A-Za-z0-9_]*                      # $VAR
      | <[^>]*>                                       # <token>
      | \.\.\.                                        # ...
      | \{.*                                          # {env = ...}, {file = ...}, {vault = ...}
      | [&*][\w\-]+                                   # a YAML anchor or alias
      | (?:password|username|token|secret|access_token|client_secret|hmac_key|secret_id|key|field|true|false|null|none)
      | [a-z_]+_(?:field|env|file|ref|path)           # a field or variable name
      | [A-Z][A-Z0-9_]+                               # an environment variable's name
      | /[^\s'"]*                                     # a file path
      | secretKeyRef | valueFrom | credentials_file
      | os\.environ(?:\.get)?[\[(].*                 # code that reads a variable
      | [A-Za-z_][\w.]*\(.*                           # code: the value of a call (password = steps.pair(case))
      | [a-z][a-z0-9]*(?:-[a-z0-9]+)+                 # a kebab-case name: an AI Core secret's (secret: acme-registry)
    )['"]?,?$""",
    re.VERBOSE,
)

# Documented placeholders: development defaults of the local stack and example values.
PLACEHOLDERS = re.compile(r"(?:-dev-only|example|placeholder|changeme|redacted|\*\*\*)", re.IGNORECASE)


@dataclass(frozen=True)
class Hit:
    path: str
    line: int
    shape: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: looks like a {self.shape}"


def scanned_files() -> Iterator[Path]:
    for name in SCANNED:
        root = REPO / name
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        yield from (path for path in paths if "__pycache__" not in path.parts)


def judged(shape: str, value: str) -> bool:
    """Whether this matched value counts as a credential."""
    value = value.strip()
    if PLACEHOLDERS.search(value) or len(set(value.strip("'\"=,"))) <= 1:  # "000...0" is a documented constant
        return False
    if shape == "password assignment":
        default = re.match(r"""^['"]?\$\{[^}:]*:-([^}]*)\}['"]?$""", value)
        if default:
            return not PLACEHOLDERS.search(default.group(1)) and bool(default.group(1))
        return not NOT_A_VALUE.match(value)
    if shape == "long base64":
        # Paths and identifiers are long runs of letters too; a secret mixes cases and digits.
        return bool(re.search(r"[0-9]", value) and re.search(r"[a-z]", value) and re.search(r"[A-Z]", value))
    return True


# Lines that match a shape but are documented as something else: (file, the line's text).
ALLOWED = {
    ("docs/audit.md", "FROM audit_events WHERE secret = 'ghcr-pull' AND event IN ('applied', 'failed')"),
    ("docs/audit.md", "FROM audit_events WHERE target = 'eu10' AND secret = 'ghcr-pull' AND event = 'applied'"),
}


def scan(text: str, path: str) -> list[Hit]:
    hits = []
    for number, line in enumerate(text.splitlines(), 1):
        if (path, line.strip()) in ALLOWED:  # secret names in SQL examples, not secret values
            continue
        for shape, pattern in SHAPES.items():
            for match in pattern.finditer(line):
                value = match.group("value") or (match.groupdict().get("value2") or "")
                if judged(shape, value):
                    hits.append(Hit(path, number, shape))
    return hits


def test_no_credential_shaped_text_in_config_deploy_and_docs() -> None:
    """config/, deploy/, docker-compose.yml, docs/ and the README hold only references and documented placeholders."""
    files = list(scanned_files())
    assert len(files) >= 10, "the scan must cover the repository's files"
    hits = [hit for path in files for hit in scan(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)))]
    # (every file there is text: a binary one would fail read_text above, and must not be there either)
    assert [str(hit) for hit in hits] == []


@pytest.mark.parametrize(
    ("shape", "line"),
    [
        ("vault token", 'VAULT_TOKEN="hvs.CAESIJ2l4b3VzZWN1cmV0b2tlbnZhbHVl"'),
        ("vault token", "token: s.Qf1s5zigZ4OX6akYjQXJC1jY"),
        ("jwt", "jwt = eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyb3RhdG9yIn0.c2lnbmF0dXJlLXZhbHVl"),
        ("private key block", "-----BEGIN RSA PRIVATE KEY-----"),
        ("private key block", "-----BEGIN PRIVATE KEY-----"),
        ("basic auth in an url", 'url = "postgresql://rotator:s3cr3t@db:5432/rotator"'),
        ("aws access key", "aws_access_key_id = AKIAIOSFODNN7ABCDEFG"),
        ("password assignment", 'password = "hunter22"'),
        ("password assignment", "POSTGRES_PASSWORD: correcthorse"),
        ("password assignment", "ROTATOR_DB_PASSWORD: ${ROTATOR_DB_PASSWORD:-realpassword}"),
        ("password assignment", '"clientsecret": "0b5f1c9e-live"'),
        ("long hex", "hmac_key = 9f1c2e07a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0"),
        ("long base64", "auth: dXNlcjpwYXNzd29yZC10aGF0LWlzLWxvbmctZW5vdWdoLTEyMw=="),
    ],
)
def test_each_shape_is_caught(shape: str, line: str) -> None:
    """The scanner catches each credential shape, so an empty result above means something."""
    assert shape in {hit.shape for hit in scan(line, "x")}


@pytest.mark.parametrize(
    "line",
    [
        'password = {env = "ROTATOR_DB_PASSWORD"}',
        'password_field = "password"',
        "ROTATOR_DB_PASSWORD: ${ROTATOR_DB_PASSWORD:-rotator-dev-only}",
        'token = {file = "/etc/rotator/secrets/http-token"}',
        "credentials_file: /etc/prometheus/secrets/rotator-http-token/token",
        'url = "postgresql+psycopg://rotator_app@db.example.com:5432/rotator?sslmode=verify-full"',
        "secretKeyRef:",
        "ok: 48213 rows checked; head 48213:9f1c...e07a",
        'key = {vault = {mount = "secret", path = "rotator/audit", field = "hmac_key"}}',
    ],
)
def test_references_and_placeholders_pass(line: str) -> None:
    """References, field names, interpolations with -dev-only defaults and elided hashes are not credentials."""
    assert scan(line, "x") == []
