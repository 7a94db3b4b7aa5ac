"""`rotator vault policy`: the printed policy is enough for a whole sweep, and nothing outside it is readable."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

from tests.e2e.scene import KEY_ID, VAULT_TOKEN_ENV, Scene, rows_of


def _references_in_vault(scene: Scene) -> None:
    """The audit key, one service key and http.token live in this test's KV mount, as in production."""
    scene.root.secrets.kv.v2.create_or_update_secret(
        path="rotator/audit", secret={"hmac_key": scene.audit_key}, mount_point=scene.mount
    )
    scene.set(
        "audit", key={"vault": {"mount": scene.mount, "path": "rotator/audit", "field": "hmac_key"}}, key_id=KEY_ID
    )
    key_file = scene.targets["tenant-b"]["service_key"]["file"]
    service_key = Path(key_file).read_text(encoding="utf-8")
    scene.root.secrets.kv.v2.create_or_update_secret(
        path="rotator/aicore/tenant-b", secret={"service_key": service_key}, mount_point=scene.mount
    )
    scene.targets["tenant-b"]["service_key"] = {
        "vault": {"mount": scene.mount, "path": "rotator/aicore/tenant-b", "field": "service_key"}
    }
    scene.set("http", token={"vault": {"mount": scene.mount, "path": "rotator/http", "field": "token"}})


def _login_with_only(scene: Scene, policy_text: str) -> str:
    """A token holding only this policy (not even Vault's default policy); the workers use it."""
    name = f"rotator-{uuid.uuid4().hex[:8]}"
    scene.root.sys.create_or_update_policy(name=name, policy=policy_text)
    scene.cleanups.append(lambda: scene.root.sys.delete_policy(name))
    token = scene.root.auth.token.create(policies=[name], no_default_policy=True, ttl="1h")["auth"]["client_token"]
    scene.env[VAULT_TOKEN_ENV] = token
    return token


def test_the_printed_policy_is_enough_for_a_sweep(scene: Scene) -> None:
    """With a token holding only the printed policy, `once` reads the sources, the audit key and a service key."""
    for tenant in ("tenant-a", "tenant-b"):
        scene.add_tenant(tenant)
    scene.add_secret("acme-registry", targets=["tenant-a", "tenant-b"], path="registries/acme")
    scene.add_secret("ghcr-pull", targets=["tenant-b"], path="registries/ghcr")
    scene.put("registries/acme")
    scene.put("registries/ghcr")
    _references_in_vault(scene)
    scene.write_config()

    policy = scene.rotator("vault", "policy").stdout
    for path in ("registries/acme", "registries/ghcr", "rotator/audit", "rotator/aicore/tenant-b", "rotator/http"):
        assert f'path "{scene.mount}/data/{path}" {{' in policy
    assert 'path "auth/token/renew-self"' in policy
    assert set(re.findall(r"capabilities = \[(.*)\]", policy)) == {'"read"', '"update"'}, "no list, no create"
    _login_with_only(scene, policy)

    result = scene.rotator("once")
    assert "3 applied" in result.lines[-1], result
    assert len(rows_of(scene.audit_rows(), event="applied")) == 3


def test_a_path_outside_the_policy_is_refused(scene: Scene) -> None:
    """A source added after the policy was printed fails on 403 as vault_permission_denied; the rest rotates."""
    scene.add_tenant("tenant-a")
    scene.add_secret("acme-registry", targets=["tenant-a"], path="registries/acme")
    scene.put("registries/acme")
    scene.write_config()
    _login_with_only(scene, scene.rotator("vault", "policy").stdout)

    scene.add_secret("other-registry", targets=["tenant-a"], path="elsewhere/other")
    scene.put("elsewhere/other")
    scene.write_config()
    result = scene.rotator("once", "--json", expect=1)
    outcomes = {row["secret"]: row for row in map(json.loads, result.lines)}
    assert outcomes["acme-registry"]["outcome"] == "applied"
    assert outcomes["other-registry"]["outcome"] == "failed"
    assert outcomes["other-registry"]["error_code"] == "vault_permission_denied"
    assert f"{scene.mount}/data/elsewhere/other" in outcomes["other-registry"]["message"]
