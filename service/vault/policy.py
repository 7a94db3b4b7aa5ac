"""The least-privilege Vault / OpenBao policy for a configuration (pure: no hvac, no I/O).

``rotator vault policy`` prints ``render_hcl(policy_grants(settings))``. Every Vault request
the rotator makes appears here, and nothing else:

- each source: KV v2 ``<mount>/data/<path>`` read (a pinned or deleted version is read
  through the same endpoint, whose 404 body carries the version metadata, so no
  ``metadata/`` grant is needed); KV v1 and dynamic paths ``<mount>/<path>`` read (the
  rotator reads dynamic paths with GET);
- each secret reference that lives in Vault (service keys, the audit key and previous audit
  keys, ``http.token``, the database password): read on its KV path;
- the session's own token: ``lookup-self`` (read; start-up, readiness, 403 triage),
  ``renew-self`` and ``revoke-self`` (update). Login endpoints need no policy.

Extension point: a feature that makes new Vault requests adds one function to
``GRANT_SOURCES`` returning its ``Grant`` values, e.g. signed audit anchors (Transit
``<mount>/sign/<key>`` and ``<mount>/verify/<key>`` update; a KV v2 anchor path
``<mount>/data/<path>`` create, update and read). ``policy_grants`` merges grants on the same
path, so a source may overlap another.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from service.config import SecretRef, Settings, SourceConfig, VaultRef, secret_refs
from service.model import SourceSpec

# Vault's capability names in its documentation's order; rendered in this order.
CAPABILITIES = ("create", "read", "update", "patch", "delete", "list", "sudo", "deny")


@dataclass(frozen=True, slots=True)
class Grant:
    """Capabilities on one policy path, and the configuration keys that need them."""

    path: str
    capabilities: tuple[str, ...]
    reasons: tuple[str, ...]


GrantSource = Callable[[Settings], Iterable[Grant]]


def source_grants(settings: Settings) -> Iterable[Grant]:
    """Read on every configured source's path."""
    for index, secret in enumerate(settings.secrets):
        yield Grant(source_path(secret.source), ("read",), (f"secrets[{index}] ({secret.name}).source",))


def reference_grants(settings: Settings) -> Iterable[Grant]:
    """Read on every secret reference that lives in Vault."""
    for where, ref in secret_refs(settings):
        vault = _vault_of(ref)
        if vault is not None:
            yield Grant(ref_path(vault), ("read",), (where,))


def token_grants(settings: Settings) -> Iterable[Grant]:
    """The session's own token: looked up, renewed and revoked (service/vault/session.py)."""
    del settings  # every configuration needs the same
    yield Grant("auth/token/lookup-self", ("read",), ("vault session: token check",))
    yield Grant("auth/token/renew-self", ("update",), ("vault session: token renewal",))
    yield Grant("auth/token/revoke-self", ("update",), ("vault session: revoked at shutdown",))


def anchor_grants(settings: Settings) -> Iterable[Grant]:
    """Signed audit anchors: the Transit key that signs them, the KV v2 path they are written to."""
    from service.config import TransitSigning

    anchors = settings.audit.anchors
    if isinstance(anchors.signing, TransitSigning):
        mount, key = anchors.signing.mount.strip("/"), anchors.signing.key
        yield Grant(f"{mount}/sign/{key}", ("update",), ("audit.anchors.signing: the worker signs the chain head",))
        yield Grant(f"{mount}/keys/{key}", ("read",), ("audit.anchors.signing: verify reads the public key",))
    if "vault" in anchors.sinks:
        mount, path = anchors.vault.mount.strip("/"), anchors.vault.path.strip("/")
        yield Grant(
            f"{mount}/data/{path}",
            ("create", "read", "update"),
            ("audit.anchors.vault: each anchor is a new version; verify reads them",),
        )
        yield Grant(f"{mount}/metadata/{path}", ("read",), ("audit.anchors.vault: verify lists the versions",))


GRANT_SOURCES: tuple[GrantSource, ...] = (source_grants, reference_grants, token_grants, anchor_grants)


def source_path(source: SourceConfig | SourceSpec) -> str:
    mount, path = source.mount.strip("/"), source.path.strip("/")
    return f"{mount}/data/{path}" if source.kind == "kv2" else f"{mount}/{path}"


def ref_path(ref: VaultRef) -> str:
    mount, path = ref.mount.strip("/"), ref.path.strip("/")
    return f"{mount}/data/{path}" if ref.kv_version == 2 else f"{mount}/{path}"


def _vault_of(ref: SecretRef) -> VaultRef | None:
    return ref.vault


def policy_grants(settings: Settings, *, sources: Sequence[GrantSource] = GRANT_SOURCES) -> list[Grant]:
    """Every grant the configuration needs, one per path (capabilities and reasons merged), sorted by path."""
    merged: dict[str, Grant] = {}
    for grants in sources:
        for grant in grants(settings):
            known = merged.get(grant.path)
            merged[grant.path] = grant if known is None else _merge(known, grant)
    return [merged[path] for path in sorted(merged)]


def _merge(known: Grant, more: Grant) -> Grant:
    return Grant(
        known.path,
        tuple(sorted({*known.capabilities, *more.capabilities}, key=CAPABILITIES.index)),
        tuple(dict.fromkeys((*known.reasons, *more.reasons))),
    )


def render_hcl(grants: Iterable[Grant], *, header: str = "") -> str:
    """The policy as HCL, each path preceded by comments naming what needs it."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    for grant in grants:
        if lines:
            lines.append("")
        lines += [f"# {reason}" for reason in grant.reasons]
        capabilities = ", ".join(f'"{capability}"' for capability in grant.capabilities)
        lines += [f'path "{_quoted(grant.path)}" {{', f"  capabilities = [{capabilities}]", "}"]
    return "\n".join(lines) + "\n"


def _quoted(path: str) -> str:
    return path.replace("\\", "\\\\").replace('"', '\\"')


HEADER = """The least-privilege policy of this rotator configuration (rotator vault policy).
Apply it:  rotator vault policy > rotator.hcl && vault policy write rotator rotator.hcl
Then give the rotator's auth role (AppRole, Kubernetes, JWT) or token this policy only."""


def vault_policy(settings: Settings) -> str:
    """The HCL ``rotator vault policy`` prints."""
    return render_hcl(policy_grants(settings), header=HEADER)
