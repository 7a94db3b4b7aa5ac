"""Vault / OpenBao: the only package that imports hvac.

- ``connect(config, read_local=...)`` builds the client and logs in: a ``VaultSession``
  (login, ``maintain()`` renewal, ``check()``, ``revoke()`` at shutdown).
- ``VaultSource(session=..., clock=...)`` reads sources into ``RegistryCredential`` values
  (``service.ports.CredentialSource``) and one field of a KV secret (``read_ref``); the
  engine reads each source once per sweep (``service.engine.once``).

Every error is a ``service.errors.SourceError`` subclass; no hvac or urllib3 exception
leaves this package.
"""

from service.vault.mapping import Location, RawSecret, map_credential, parse_expiry, text_field
from service.vault.renewal import Step, TokenLease, next_step, renewal_due
from service.vault.session import VaultSession, connect
from service.vault.source import VaultSource

__all__ = [
    "Location",
    "RawSecret",
    "Step",
    "TokenLease",
    "VaultSession",
    "VaultSource",
    "connect",
    "map_credential",
    "next_step",
    "parse_expiry",
    "renewal_due",
    "text_field",
]
