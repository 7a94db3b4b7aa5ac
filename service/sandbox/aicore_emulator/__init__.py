"""An SAP AI Core emulator: XSUAA tokens and the Docker registry secret API, over real HTTP.

Faithful to ``reference/aicore-openapi.yaml`` (v2.42.0) for the six endpoints below; used
by the tests, the benchmarks and ``rotator demo`` (SAP's SaaS cannot run locally).

URL layout (one listener on 127.0.0.1, several tenants)::

    POST {url}/uaa/<tenant>/oauth/token                               XSUAA client credentials
    GET  {url}/api/<tenant>/v2/admin/dockerRegistrySecrets?$top&$skip&$count
    POST {url}/api/<tenant>/v2/admin/dockerRegistrySecrets            202 {"message"}
    GET / PATCH / DELETE {url}/api/<tenant>/v2/admin/dockerRegistrySecrets/<name>
    GET  {url}/api/<tenant>/v2/admin/resourceQuota/dockerRegistrySecrets?quotaOnly

A tenant's service key has ``url = {url}/uaa/<tenant>`` and ``serviceurls.AI_API_URL =
{url}/api/<tenant>``. With an ``mtls_context`` a second, HTTPS listener serves
``/uaa/<tenant>/oauth/token`` to X.509 tenants, which must present the certificate
their key names (``certurl`` points there).

Behaviour, as the spec and the real service:

- tokens: form body or HTTP Basic; ``expires_in`` = ``token_ttl``; tokens are bound to
  their tenant and expire on the emulator's clock; 401 (XSUAA shape) for wrong credentials;
- the API answers ``{"error": {"code", "message", "requestId", "target"}}`` on errors, and
  an ``X-Request-Id`` header on every answer; 401 without a live token of the tenant;
- names: the spec's pattern and at most 63 characters (400); 404 for unknown names;
- bodies: ``data`` holds exactly ``.dockerconfigjson``, a string that parses as JSON (400);
  POST takes ``application/json``, PATCH also ``application/merge-patch+json`` (else 415);
- 202 for create, edit and delete; a tenant holds at most ``quota`` secrets (default 50).
  Undocumented by the spec, so chosen here: a create beyond the quota answers 400
  ``QuotaExceeded`` and a create of an existing name 409 ``AlreadyExists``;
- writes need the editor role (403 without it); reads work for any identity;
- ``AI-Resource-Group`` is accepted and ignored (these secrets are tenant-wide);
- data is write-only: no API call returns it. ``emulator.inspect`` is the separate,
  test-only door to what was stored, the writes made and the requests counted.

Knobs (thread-safe, for tests and benchmarks): ``latency``, ``token_ttl``, ``fail_next``
(an error status, optionally with ``Retry-After``; API or token endpoint), ``stall_next``
(hold requests past a client's timeout; they still apply afterwards, like a server that
finishes after the client gave up; ``method=`` limits it to e.g. PATCH), ``clear_faults``,
``set_editor``, ``expire_tokens``, ``remove_secret`` (deleted out of band), and standing
rules ``fail_every`` (a 429 storm, 503 bursts) and ``stall_every`` (late PATCHes).

Every XSUAA and API request is kept in a request log (``inspect.requests()``: method,
path, tenant, status, arrival and answer times, SHA-256 of the body; never a value), so
a test can check that no PATCH arrived without a committed audit intent. Run as a
process (``rotator emulator aicore``), the same knobs are flags, and a loopback-only admin
door below ``/_emulator/`` (``admin.py``; never below ``/v2``) changes them at run time
and reads the inspector.
"""

from service.sandbox.aicore_emulator.process import serve
from service.sandbox.aicore_emulator.server import AICoreEmulator, Inspector
from service.sandbox.aicore_emulator.state import Write

__all__ = ["AICoreEmulator", "Inspector", "Write", "serve"]
