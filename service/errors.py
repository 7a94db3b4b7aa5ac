"""One error tree for the whole service.

Every error the service raises on purpose derives from ``RotatorError``. Adapters
translate library errors (hvac, httpx, SQLAlchemy, psycopg) into this tree at their
boundary with ``raise ... from None`` or ``raise ... from e`` where the cause holds no
secret, so no library exception leaks past an adapter.

    RotatorError
    ├── ConfigError                 bad configuration; exit code 2
    ├── DependencyUnavailable       a server cannot be reached; exit code 3 (mixin)
    ├── SourceError                 reading a source from Vault / OpenBao
    │   ├── VaultUnavailable        (also DependencyUnavailable)
    │   ├── VaultSealed             (also DependencyUnavailable)
    │   ├── VaultAuthError          login / renewal refused
    │   ├── VaultPermissionDenied   carries the policy path needed
    │   ├── SourceNotFound
    │   ├── SourceVersionDeleted    KV v2 version deleted or destroyed
    │   └── FieldError              field missing, empty or not a string
    ├── CredentialError             a credential that cannot be rendered
    ├── AICoreError                 status, code, request id; never a body or header
    │   ├── AICoreAuthError         XSUAA refused the client credentials
    │   ├── Unauthorized            401 from the API after one token refresh
    │   ├── Forbidden               403: the identity may not edit registry secrets
    │   ├── SecretNotFound          404
    │   ├── BadRequest              400
    │   ├── RateLimited             429 after retries
    │   └── Unavailable             5xx, timeouts, connection errors after retries
    │       └── OutcomeUnknown      a write that may have landed (timeout after sending)
    └── AuditError                  the audit trail cannot be written or read
        ├── AuditUnavailable        (also DependencyUnavailable)
        ├── AuditMisconfigured      login refused, role or database missing; exit code 2
        └── SchemaNotCurrent        the database is not at the migrations' head

``str(error)`` is always safe to log: messages name secrets, targets, mounts, paths and
fields, never a credential, a response body or a header. Each class has a stable
``code`` used in the audit trail, logs and metrics.
"""

from __future__ import annotations

from dataclasses import dataclass


class RotatorError(Exception):
    """Base of every error the service raises on purpose."""

    code = "rotator_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class DependencyUnavailable(RotatorError):
    """A server we depend on could not be reached (exit code 3)."""

    code = "dependency_unavailable"


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in the configuration: where it is and what is wrong."""

    location: str
    problem: str
    severity: str = "error"

    def render(self, source: str) -> str:
        where = f"{source}: {self.location}" if self.location else source
        return f"{where}: {self.problem}"


class ConfigError(RotatorError):
    """The configuration is invalid; carries every issue found, not just the first."""

    code = "config_invalid"

    def __init__(self, source: str, issues: list[ConfigIssue]) -> None:
        self.source = source
        self.issues = issues
        super().__init__("\n".join(issue.render(source) for issue in issues))


# --- Vault / OpenBao -------------------------------------------------------------


class SourceError(RotatorError):
    """A source could not be read. Names mount, path and field; never a value."""

    code = "source_error"

    def __init__(self, message: str, *, mount: str = "", path: str = "", field: str = "") -> None:
        self.mount = mount
        self.path = path
        self.field = field
        super().__init__(message)


class VaultUnavailable(SourceError, DependencyUnavailable):
    code = "vault_unavailable"


class VaultSealed(SourceError, DependencyUnavailable):
    code = "vault_sealed"


class VaultAuthError(SourceError):
    code = "vault_auth_failed"


class VaultPermissionDenied(SourceError):
    code = "vault_permission_denied"

    def __init__(self, message: str, *, mount: str = "", path: str = "", policy_path: str = "") -> None:
        self.policy_path = policy_path
        super().__init__(message, mount=mount, path=path)


class SourceNotFound(SourceError):
    code = "source_not_found"


class SourceVersionDeleted(SourceError):
    code = "source_version_deleted"


class FieldError(SourceError):
    code = "source_field_invalid"


# --- Rendering -------------------------------------------------------------------


class CredentialError(RotatorError):
    """A credential cannot be rendered into a .dockerconfigjson (names the field)."""

    code = "credential_invalid"

    def __init__(self, message: str, *, secret: str = "", field: str = "") -> None:
        self.secret = secret
        self.field = field
        super().__init__(message)


# --- AI Core ---------------------------------------------------------------------


class AICoreError(RotatorError):
    """AI Core answered with an error, or could not be reached.

    Carries what SAP support needs (status, AI Core error code, request id) and what
    an operator needs (target, secret); never the request body or any header.
    """

    code = "aicore_error"

    def __init__(
        self,
        message: str,
        *,
        target: str = "",
        secret: str = "",
        status: int | None = None,
        aicore_code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        self.target = target
        self.secret = secret
        self.status = status
        self.aicore_code = aicore_code  # AI Core's own ``code``; ``code`` (a class attribute) is ours
        self.request_id = request_id
        super().__init__(message)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, aicore_code={self.aicore_code!r}, "
            f"request_id={self.request_id!r}, target={self.target!r}, secret={self.secret!r})"
        )


class AICoreAuthError(AICoreError):
    code = "aicore_auth_failed"


class Unauthorized(AICoreError):
    code = "aicore_unauthorized"


class Forbidden(AICoreError):
    code = "aicore_forbidden"


class SecretNotFound(AICoreError):
    code = "aicore_secret_not_found"


class BadRequest(AICoreError):
    code = "aicore_bad_request"


class RateLimited(AICoreError):
    code = "aicore_rate_limited"


class Unavailable(AICoreError, DependencyUnavailable):
    code = "aicore_unavailable"


class OutcomeUnknown(Unavailable):
    """A write whose request may have reached AI Core (a timeout or a connection lost after sending).

    Neither ``applied`` nor ``failed`` may be claimed: the audit trail records ``unknown`` and
    the next run settles it by writing again (a PATCH sets the whole value).
    """

    code = "aicore_outcome_unknown"


# --- Registry verification -------------------------------------------------------


# --- Audit trail and state -------------------------------------------------------


class AuditError(RotatorError):
    code = "audit_error"


class AuditUnavailable(AuditError, DependencyUnavailable):
    code = "audit_unavailable"


class AuditMisconfigured(AuditError):
    """The server answers but refuses us: wrong password, no such role or database (exit code 2)."""

    code = "audit_misconfigured"


class SchemaNotCurrent(AuditError):
    """The database schema is not at this version's head revision; names both and what to run."""

    code = "schema_not_current"

    def __init__(self, *, current: str | None, head: str, hint: str = "run `rotator db upgrade`") -> None:
        self.current = current
        self.head = head
        at = f"revision {current}" if current else "no revision (no schema yet)"
        super().__init__(f"database is at {at}, head is {head}: {hint}")
