"""The least-privilege Vault policy generator (pure, over Settings)."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.cli import main
from service.config import Settings, load_settings
from service.vault.policy import GRANT_SOURCES, Grant, policy_grants, render_hcl

CONFIG = """
[vault.auth]
method = "token"
token = {env = "VAULT_TOKEN"}

[audit]
key = {vault = {mount = "secret", path = "rotator/audit", field = "hmac_key"}}
key_id = "k2"
previous_keys = [{key_id = "k1", key = {vault = {mount = "old", path = "audit-k1", field = "k", kv_version = 1}}}]

[database]
password = {vault = {path = "rotator/db", field = "password"}}

[http]
token = {vault = {path = "rotator/http", field = "token"}}

[targets.eu]
service_key = {vault = {mount = "secret", path = "rotator/aicore/eu", field = "service_key"}}

[targets.us]
service_key = {file = "/keys/us.json"}

[defaults.schedule]
every = "6h"

[[secrets]]
name = "acme-registry"
targets = ["eu", "us"]
registries = ["registry.acme.example"]
source = {kind = "kv2", mount = "secret/", path = "/registries/acme"}

[[secrets]]
name = "acme-pinned"
targets = ["eu"]
registries = ["registry.acme.example"]
source = {kind = "kv2", mount = "secret", path = "registries/acme", version = 3}

[[secrets]]
name = "legacy-registry"
targets = ["eu"]
registries = ["legacy.example"]
source = {kind = "kv1", mount = "kv", path = "legacy"}

[[secrets]]
name = "ghcr-pull"
targets = ["us"]
registries = ["ghcr.io"]
source = {kind = "dynamic", mount = "artifactory", path = "token/ci-pull"}
"""


def settings(tmp_path: Path) -> Settings:
    path = tmp_path / "rotator.toml"
    path.write_text(CONFIG)
    return load_settings(path, environ={})


def test_every_path_the_rotator_reads_with_the_capability_it_needs(tmp_path: Path) -> None:
    """KV v2 under data/, KV v1 and dynamic as given, Vault references, the token's self endpoints; nothing else."""
    grants = {grant.path: grant.capabilities for grant in policy_grants(settings(tmp_path))}
    assert grants == {
        "secret/data/registries/acme": ("read",),  # two secrets, a pinned version too: one path
        "kv/legacy": ("read",),
        "artifactory/token/ci-pull": ("read",),
        "secret/data/rotator/audit": ("read",),
        "old/audit-k1": ("read",),
        "secret/data/rotator/db": ("read",),
        "secret/data/rotator/http": ("read",),
        "secret/data/rotator/aicore/eu": ("read",),
        "auth/token/lookup-self": ("read",),
        "auth/token/renew-self": ("update",),
        "auth/token/revoke-self": ("update",),
    }


def test_grants_on_one_path_merge_their_reasons_and_capabilities(tmp_path: Path) -> None:
    """A new grant source (e.g. signed audit anchors) is one function; overlapping paths merge."""

    def anchors(_: Settings) -> list[Grant]:
        return [
            Grant("transit/sign/rotator-anchor", ("update",), ("audit anchors: sign",)),
            Grant("secret/data/registries/acme", ("update", "create"), ("audit anchors: KV path",)),
        ]

    grants = {g.path: g for g in policy_grants(settings(tmp_path), sources=(*GRANT_SOURCES, anchors))}
    assert grants["transit/sign/rotator-anchor"].capabilities == ("update",)
    merged = grants["secret/data/registries/acme"]
    assert merged.capabilities == ("create", "read", "update")
    assert merged.reasons == (
        "secrets[0] (acme-registry).source",
        "secrets[1] (acme-pinned).source",
        "audit anchors: KV path",
    )


def test_hcl_is_one_block_per_path_with_its_reasons() -> None:
    """Each grant renders as a path block preceded by comments naming the configuration keys."""
    text = render_hcl([Grant('a/"b"', ("read",), ("targets.eu.service_key",))], header="title")
    assert text == '# title\n\n# targets.eu.service_key\npath "a/\\"b\\"" {\n  capabilities = ["read"]\n}\n'


def test_command_prints_the_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`rotator vault policy` prints the HCL and exits 0, touching no network."""
    path = tmp_path / "rotator.toml"
    path.write_text(CONFIG)
    assert main(["vault", "policy", "-c", str(path)]) == 0
    out = capsys.readouterr().out
    assert 'path "secret/data/rotator/aicore/eu" {\n  capabilities = ["read"]\n}' in out
    assert "/keys/us.json" not in out, "file references need no policy"


def test_signed_anchors_add_the_transit_key_and_the_kv_path() -> None:
    """With Transit signing and the vault sink, the policy grants sign, key read, and the anchor path's versions."""
    from service.config import Settings
    from service.vault.policy import policy_grants

    settings = Settings(
        audit={
            "anchors": {
                "sinks": ["log", "vault"],
                "vault": {"mount": "secret", "path": "rotator/anchors"},
                "signing": {"kind": "transit", "mount": "transit", "key": "rotator-anchors"},
            }
        }
    )
    grants = {grant.path: grant.capabilities for grant in policy_grants(settings)}
    assert grants["transit/sign/rotator-anchors"] == ("update",)
    assert grants["transit/keys/rotator-anchors"] == ("read",)
    assert grants["secret/data/rotator/anchors"] == ("create", "read", "update")
    assert grants["secret/metadata/rotator/anchors"] == ("read",)
    unsigned = {grant.path for grant in policy_grants(Settings())}
    assert not any("anchors" in path for path in unsigned)
