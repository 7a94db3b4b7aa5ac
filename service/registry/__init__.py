"""Verify registry credentials against the Docker Registry HTTP API v2 before they are written.

``RegistryVerifier`` (``verifier.py``) is the only part that does I/O; challenge parsing
(``challenge.py``), request addresses (``endpoints.py``) and outcome classification
(``classify.py``) are pure functions.
"""

from service.registry.classify import permits_write
from service.registry.verifier import RegistryVerifier

__all__ = ["RegistryVerifier", "permits_write"]
