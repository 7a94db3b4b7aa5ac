"""Logging in to Vault with the configured auth method; each login reads its secret afresh.

Token, AppRole, Kubernetes and JWT. The secret id, token and JWT are read through
``read_local`` at every login (projected service account tokens and agent-written token
files rotate), used once and never logged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import hvac

from service.config import SecretRef, VaultAuthConfig
from service.errors import RotatorError, SourceError, VaultAuthError
from service.vault.renewal import TokenLease
from service.vault.translate import LIBRARY_ERRORS, login_refused

ReadLocal = Callable[[SecretRef], str]


def login(client: hvac.Client, *, auth: VaultAuthConfig, read_local: ReadLocal, now: float) -> TokenLease:
    """Log in (sets ``client.token``) and return what Vault said about the new token."""
    failure: SourceError | None = None
    try:
        token_info = _LOGINS[auth.method](client, auth, read_local)
    except LIBRARY_ERRORS as e:
        failure = login_refused(e, method=auth.method, mount=auth.mount_path, address=client.url)
    if failure is not None:
        raise failure  # outside the except block: the library exception is not even its __context__
    return TokenLease(
        obtained_at=now,
        ttl=float(token_info.get("ttl") or token_info.get("lease_duration") or 0),
        renewable=bool(token_info.get("renewable")),
    )


def _token(client: hvac.Client, auth: VaultAuthConfig, read_local: ReadLocal) -> Mapping[str, Any]:
    assert auth.token is not None
    client.token = secret(read_local, auth.token, what="the Vault token")
    data: Mapping[str, Any] = client.auth.token.lookup_self()["data"]
    return data


def _approle(client: hvac.Client, auth: VaultAuthConfig, read_local: ReadLocal) -> Mapping[str, Any]:
    assert auth.role_id is not None
    assert auth.secret_id is not None
    secret_id = secret(read_local, auth.secret_id, what="the AppRole secret id")
    response = client.auth.approle.login(auth.role_id, secret_id, mount_point=auth.mount_path)
    return _auth_block(response)


def _jwt(client: hvac.Client, auth: VaultAuthConfig, read_local: ReadLocal) -> Mapping[str, Any]:
    assert auth.role is not None
    assert auth.jwt_ref is not None
    jwt = secret(read_local, auth.jwt_ref, what="the JWT")
    return _auth_block(client.auth.jwt.jwt_login(role=auth.role, jwt=jwt, path=auth.mount_path))


def _kubernetes(client: hvac.Client, auth: VaultAuthConfig, read_local: ReadLocal) -> Mapping[str, Any]:
    assert auth.role is not None
    assert auth.jwt_ref is not None
    jwt = secret(read_local, auth.jwt_ref, what="the service account token")
    return _auth_block(client.auth.kubernetes.login(auth.role, jwt, mount_point=auth.mount_path))


def _auth_block(response: Any) -> Mapping[str, Any]:
    block = response.get("auth") if isinstance(response, Mapping) else None
    if not isinstance(block, Mapping) or not block.get("client_token"):
        raise VaultAuthError("Vault answered the login without a token; check the auth method and role")
    return block


_LOGINS: dict[str, Callable[[hvac.Client, VaultAuthConfig, ReadLocal], Mapping[str, Any]]] = {
    "token": _token,
    "approle": _approle,
    "jwt": _jwt,
    "kubernetes": _kubernetes,
}


def secret(read_local: ReadLocal, ref: SecretRef, *, what: str) -> str:
    """Resolve a local reference for a login; a failure names the reference, never a value."""
    problem = ""
    try:
        value = read_local(ref)
    except RotatorError:
        raise
    except (OSError, KeyError, ValueError) as e:
        problem = type(e).__name__
    if problem:
        raise VaultAuthError(f"cannot read {what} from {ref.describe()} ({problem})")
    if not value:
        raise VaultAuthError(f"{what} from {ref.describe()} is empty")
    return value
