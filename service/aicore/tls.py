"""The TLS context of one target's HTTP client, carrying the client certificate of X.509 keys.

Python's ``ssl`` module loads a certificate chain only from files, so the PEM strings
of the service key are written to a private temporary directory (mode 0700, files
0600), loaded, and deleted before this function returns. Nothing here logs the key.
"""

from __future__ import annotations

import functools
import os
import ssl
import tempfile
from pathlib import Path

import httpx

from service.aicore.servicekey import ServiceKey
from service.errors import AICoreAuthError


class CABundleError(ValueError):
    """A configured CA bundle that cannot be loaded; the message names the file, never its content."""


def tls_context(key: ServiceKey, *, ca_file: str | None = None) -> ssl.SSLContext:
    """Verify servers against ``ca_file`` (or the default trust store); present the key's certificate if X.509."""
    if key.certificate is None or key.private_key is None:
        return _server_trust(ca_file)
    context = _new_context(ca_file)
    load_client_certificate(context, certificate=key.certificate, private_key=key.private_key)
    return context


@functools.lru_cache(maxsize=8)
def _server_trust(ca_file: str | None) -> ssl.SSLContext:
    """One shared context for client-secret targets: loading the CA bundle costs ~50 ms per context."""
    return _new_context(ca_file)


def _new_context(ca_file: str | None) -> ssl.SSLContext:
    """Verification always on: the default trust store, or exactly ``ca_file``."""
    if not ca_file:
        return httpx.create_ssl_context()
    try:
        return ssl.create_default_context(cafile=ca_file)
    except OSError as e:  # ssl.SSLError is an OSError too
        reason = e.strerror or getattr(e, "reason", None) or type(e).__name__
        raise CABundleError(f"cannot load CA bundle {ca_file}: {reason}") from None


def load_client_certificate(context: ssl.SSLContext, *, certificate: str, private_key: str) -> None:
    """Load a PEM certificate chain and its private key into ``context`` without leaving them on disk."""
    with tempfile.TemporaryDirectory(prefix="rotator-mtls-") as directory:
        cert_path = _private_file(Path(directory) / "cert.pem", certificate)
        key_path = _private_file(Path(directory) / "key.pem", private_key)
        try:
            context.load_cert_chain(certfile=cert_path, keyfile=key_path)
        except ssl.SSLError:
            raise AICoreAuthError("the service key's certificate and key do not form a usable PEM key pair") from None


def _private_file(path: Path, text: str) -> str:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text if text.endswith("\n") else text + "\n")
    return str(path)
