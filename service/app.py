"""Composition root: builds the adapters from settings, lazily, and owns their closing.

A command touches only what it needs: ``rotator audit list`` opens the database and
nothing else; ``rotator run`` builds everything. Secret values are resolved here, from
files, environment variables or Vault, and handed straight to the adapter that needs them.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from service import __version__, collector, logs
from service.config import SecretRef, Settings
from service.errors import ConfigError, ConfigIssue, RotatorError
from service.model import RotationKey, ScheduleSpec, SecretSpec

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from service.aicore.client import AICoreClient
    from service.anchors import Anchorer, Signer
    from service.audit.changes import StateChanges
    from service.audit.controls import PostgresControls
    from service.audit.instance import InstanceLock
    from service.audit.state import PostgresStateStore
    from service.audit.store import AuditStore
    from service.engine import Rotator
    from service.metrics import Metrics
    from service.ports import RotationListener
    from service.vault import VaultSession, VaultSource
    from service.vault.anchors import KvAnchorSink
    from service.windows import Window

log = logs.get_logger("rotator.app")

MIN_AUDIT_KEY_BYTES = 16


def utcnow() -> datetime:
    return datetime.now(UTC)


def read_local(ref: SecretRef, *, environ: Mapping[str, str] | None = None) -> str:
    """The value of a file or environment reference (trailing newline stripped)."""
    env = os.environ if environ is None else environ
    if ref.env is not None:
        value = env.get(ref.env)
        if not value:
            raise ConfigError("(environment)", [ConfigIssue(ref.env, "environment variable is not set")])
        return value
    if ref.file is not None:
        try:
            return Path(ref.file).read_text().rstrip("\r\n")
        except OSError as e:
            raise ConfigError(str(ref.file), [ConfigIssue("", f"cannot read: {e.strerror}")]) from None
    raise ConfigError("(reference)", [ConfigIssue(ref.describe(), "needs Vault, which is not available here")])


class App:
    """Everything the commands need, built on first use and closed in reverse order."""

    def __init__(self, settings: Settings, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        self.clock = clock
        self.instance = settings.instance or socket.gethostname()
        self.actor = f"rotator/{__version__}@{self.instance}"
        self.owner = f"{self.instance}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._closers: list[tuple[str, Callable[[], Any]]] = []
        self._stores: dict[str, AICoreClient] = {}
        self._stores_lock = threading.Lock()
        self._pairs: tuple[Settings | None, Mapping[RotationKey, SecretSpec]] = (None, {})
        self._periods: dict[tuple[object, str], timedelta] = {}  # cron periods of the hour below
        self._periods_hour: datetime | None = None
        self._allowances: dict[tuple[object, timedelta], timedelta] = {}  # per ``every`` and grace

    # --- secrets ------------------------------------------------------------------

    def resolve(self, ref: SecretRef, *, where: str) -> str:
        """A secret value from its reference; a problem is a ConfigError naming ``where``."""
        try:
            if ref.vault is not None:
                return self.vault_source.read_ref(ref.vault)
            return read_local(ref)
        except ConfigError as e:
            problems = "; ".join(issue.problem for issue in e.issues)
            raise ConfigError("configuration", [ConfigIssue(where, f"{ref.describe()}: {problems}")]) from None

    @cached_property
    def audit_key(self) -> bytes:
        return self._hmac_key(self.settings.audit.key, where="audit.key")

    @cached_property
    def previous_audit_keys(self) -> dict[str, bytes]:
        """``audit.previous_keys`` by key id: fingerprints they made still count as unchanged."""
        return {
            previous.key_id: self._hmac_key(previous.key, where=f"audit.previous_keys[{index}] ({previous.key_id}).key")
            for index, previous in enumerate(self.settings.audit.previous_keys)
        }

    def _hmac_key(self, ref: SecretRef, *, where: str) -> bytes:
        key = self.resolve(ref, where=where).encode()
        if len(key) < MIN_AUDIT_KEY_BYTES:
            raise ConfigError(
                "configuration",
                [ConfigIssue(where, f"the HMAC key must have at least {MIN_AUDIT_KEY_BYTES} bytes")],
            )
        return key

    # --- adapters -----------------------------------------------------------------

    @cached_property
    def vault_session(self) -> VaultSession:
        from service.vault import connect

        session = connect(
            self.settings.vault, read_local=read_local, max_connections=self.settings.rotation.max_concurrency
        )
        self._closers.append(("vault", session.close))  # revokes our token, closes the pool
        return session

    @cached_property
    def vault_source(self) -> VaultSource:
        from service.vault import VaultSource

        return VaultSource(session=self.vault_session, clock=self.clock)

    @cached_property
    def engine(self) -> Engine:
        from service.audit.db import make_engine

        db = self.settings.database
        password = self.resolve(db.password, where="database.password") if db.password else None
        engine = make_engine(db, password=password)
        self._closers.append(("database", engine.dispose))
        return engine

    @cached_property
    def audit(self) -> AuditStore:
        from service.audit.store import AuditStore

        return AuditStore(self.engine)

    @cached_property
    def controls(self) -> PostgresControls:
        """Pauses and pins (``rotator pause``, ``rotator rollback``), shared by every replica."""
        from service.audit.controls import PostgresControls

        return PostgresControls(self.engine)

    @cached_property
    def instance_lock(self) -> InstanceLock:
        from service.audit.instance import InstanceLock

        lock = InstanceLock(self.engine, self.owner)
        lock.acquire()
        self._closers.append(("instance lock", lock.close))
        return lock

    @cached_property
    def state(self) -> PostgresStateStore:
        from service.audit.state import PostgresStateStore

        return PostgresStateStore(self.engine, instance=self.instance_lock)

    @cached_property
    def state_reader(self) -> PostgresStateStore:
        """State for read-only commands: no instance lock is taken, so nothing can be claimed."""
        from service.audit.instance import InstanceLock
        from service.audit.state import PostgresStateStore

        return PostgresStateStore(self.engine, instance=InstanceLock(self.engine, self.owner))

    @cached_property
    def state_changes(self) -> StateChanges:
        """States by when they were last written, whichever replica wrote them (the worker's health pass)."""
        from service.audit.changes import StateChanges

        return StateChanges(self.engine)

    @cached_property
    def metrics(self) -> Metrics:
        from service.metrics import Metrics

        return Metrics()

    def store(self, target: str) -> AICoreClient:
        """The AI Core client of one target, built once (its service key may come from Vault)."""
        with self._stores_lock:
            if target not in self._stores:
                self._stores[target] = self._build_store(target)
            return self._stores[target]

    def _build_store(self, target: str) -> AICoreClient:
        from service.aicore.client import build_client
        from service.aicore.servicekey import ServiceKeyError, cleartext_issues, parse_service_key
        from service.aicore.tls import CABundleError

        config = self.settings.targets[target]
        where = f"targets.{target}.service_key"
        try:
            key = parse_service_key(self.resolve(config.service_key, where=where))
        except ServiceKeyError as e:
            raise ConfigError("configuration", [ConfigIssue(where, str(e))]) from None
        issues = cleartext_issues(key, target=target, insecure_http=config.insecure_http)
        if any(issue.severity == "error" for issue in issues):
            raise ConfigError("configuration", [issue for issue in issues if issue.severity == "error"])
        for issue in issues:
            log.warning("transport.insecure", key=issue.location, problem=issue.problem)
        limit = config.max_concurrency or self.settings.rotation.per_target_concurrency
        try:
            client = build_client(
                target=target,
                key=key,
                timeout=config.timeout.total_seconds(),
                retry=self.settings.rotation.retry,
                max_connections=limit,
                ca_file=str(config.ca_cert) if config.ca_cert else None,
                proxies=self._environment_proxies,
            )
        except CABundleError as e:
            raise ConfigError("configuration", [ConfigIssue(f"targets.{target}.ca_cert", str(e))]) from None
        self._closers.append((f"aicore {target}", client.close))
        return client

    @cached_property
    def _environment_proxies(self) -> dict[str, str]:
        """``*_PROXY`` and ``NO_PROXY`` as urllib reads them, once for every target's client."""
        import urllib.request

        return urllib.request.getproxies()

    @cached_property
    def http_token(self) -> str | None:
        """The bearer token /status and /metrics require, or None when ``http.token`` is not set."""
        ref = self.settings.http.token
        return self.resolve(ref, where="http.token") if ref is not None else None

    def warn_insecure_transport(self) -> None:
        """Log, at start, every endpoint allowed in cleartext and a database reached without TLS."""
        from service.checks import transport_warnings

        for issue in transport_warnings(self.settings):
            log.warning("transport.insecure", key=issue.location, problem=issue.problem)

    @cached_property
    def rotator(self) -> Rotator:
        from service.engine import Rotator, RotatorOptions
        from service.observe import Observer
        from service.registry import RegistryVerifier
        from service.scheduler import next_due_after, period_of
        from service.windows import blocked

        rotation = self.settings.rotation
        listener = self._notifying(Observer(metrics=self.metrics, clock=self.clock, anchorer=self.anchorer))
        verifier = RegistryVerifier()
        self._closers.append(("registry verifier", verifier.close))
        rotator = Rotator(
            source=self.vault_source,
            stores=self.store,
            audit=self.audit,
            state=self.state,
            verifier=verifier,
            listener=listener,
            clock=self.clock,
            controls=self.controls,
            options=RotatorOptions(
                audit_key=self.audit_key,
                audit_key_id=self.settings.audit.key_id,
                previous_audit_keys=self.previous_audit_keys,
                actor=self.actor,
                owner=self.owner,
                lease_ttl=rotation.lease_ttl,
                max_concurrency=rotation.max_concurrency,
                per_target_concurrency=rotation.per_target_concurrency,
                target_concurrency={
                    n: t.max_concurrency for n, t in self.settings.targets.items() if t.max_concurrency
                },
                renew_fraction=rotation.lease_renew_fraction,
                failure_backoff=rotation.failure_backoff,
                failure_backoff_max=rotation.failure_backoff_max,
                schedule_next=lambda secret, now: next_due_after(_schedule(secret), secret.name, now),
                confirm_every=lambda secret, now: period_of(_schedule(secret), secret.name, now),
                window_block=lambda secret, now: blocked(self.windows_of(secret), now),
                on_pool_shrunk=collector.trim,  # the leaving threads' freed chunks back to the system
            ),
        )
        self._closers.append(("rotator", rotator.close))
        return rotator

    def adopt(
        self,
        settings: Settings,
        *,
        targets_changed: Sequence[str] = (),
        pairs: Mapping[RotationKey, SecretSpec] | None = None,
    ) -> None:
        """Use a reloaded configuration: its secrets and schedules now, changed targets' keys at next use.

        ``pairs``: every configured pair's spec, when the caller built them (the worker, for its
        jobs); ``settings`` may then come ``without_secrets``. A replaced client is closed with
        the others at exit: a rotation may still be using it.
        """
        self.settings = settings
        if pairs is not None:
            self._pairs = (settings, pairs)
        with self._stores_lock:
            for target in targets_changed:
                self._stores.pop(target, None)

    def stale_allowance(self, secret: SecretSpec) -> timedelta:
        """How old a pair's last success may be: its schedule's period plus the misfire grace.

        An ``every`` schedule's allowance is one value for all its pairs. A cron's period is
        worked out at most once an hour per (schedule, name): the worker asks for every pair
        every 10 minutes, and 5,000 cron computations each time would keep it busy. Only the
        current hour's periods are kept (a week of hours kept was 5,000 entries per hour).
        """
        schedule = secret.schedule
        assert schedule is not None, "resolved by Settings.spec_of"
        grace = self.settings.rotation.misfire_grace
        if schedule.every is not None:
            allowance = self._allowances.get((schedule, grace))
            if allowance is None:
                allowance = self._allowances[(schedule, grace)] = schedule.every + grace
            return allowance
        from service.scheduler import period_of

        now = self.clock()
        hour = now.replace(minute=0, second=0, microsecond=0)
        if hour != self._periods_hour:
            self._periods_hour, self._periods = hour, {}
        key = (schedule, secret.name)
        period = self._periods.get(key)
        if period is None:
            period = self._periods[key] = period_of(schedule, secret.name, now)
        return period + grace

    @cached_property
    def anchor_signer(self) -> Signer | None:
        """The key that signs (and checks) anchors: Vault Transit or Ed25519; None when unsigned."""
        from service.anchors import Ed25519Signer
        from service.config import TransitSigning

        signing = self.settings.audit.anchors.signing
        if signing is None:
            return None
        if isinstance(signing, TransitSigning):
            from service.vault.anchors import TransitSigner

            return TransitSigner(session=self.vault_session, mount=signing.mount, key=signing.key)
        where = "audit.anchors.signing.key"
        return Ed25519Signer.from_pem(self.resolve(signing.key, where=where), where=where)

    def anchor_vault(self, path: str | None = None) -> KvAnchorSink:
        """The KV v2 anchor path: ``MOUNT/PATH``, or the configured one."""
        from service.vault.anchors import KvAnchorSink

        sink = self.settings.audit.anchors.vault
        mount, _, rest = (path or "").strip("/").partition("/")
        if path and not rest:
            raise ConfigError("command line", [ConfigIssue("--anchors", f"vault:{path}: give vault:MOUNT/PATH")])
        return KvAnchorSink(session=self.vault_session, mount=mount or sink.mount, path=rest or sink.path)

    @cached_property
    def anchorer(self) -> Anchorer:
        """Signs the chain head after each sweep that moved it and writes it to the configured sinks."""
        from service.anchors import Anchorer, AnchorSink, FileSink, LogSink
        from service.observe import anchor_failure_reporter

        config = self.settings.audit.anchors
        sinks: list[AnchorSink] = []
        for name in config.sinks:
            if name == "log":
                sinks.append(LogSink())
            elif name == "file" and config.file is not None:
                sinks.append(FileSink(config.file))
            elif name == "vault":
                sinks.append(self.anchor_vault())
        return Anchorer(
            signer=self.anchor_signer,
            sinks=sinks,
            instance=self.instance,
            clock=self.clock,
            on_failure=anchor_failure_reporter(self.metrics),
        )

    def pairs(self) -> Mapping[RotationKey, SecretSpec]:
        """Each configured pair's spec: the ones ``adopt`` was given, else built once per settings object."""
        settings = self.settings
        if self._pairs[0] is not settings:
            self._pairs = (settings, settings.spec_pairs())
        return self._pairs[1]

    def windows_of(self, secret: SecretSpec) -> list[Window]:
        """The global windows and the secret's own."""
        return [*self.settings.windows, *secret.windows]

    def _allowance_of(self, key: RotationKey) -> timedelta | None:
        """The stale allowance of a configured pair (None for one no longer configured), after reloads too."""
        secret = self.pairs().get(key)
        return self.stale_allowance(secret) if secret is not None else None

    def _notifying(self, listener: RotationListener) -> RotationListener:
        """``listener``, wrapped by the notifier when ``[notify]`` names destinations."""
        config = self.settings.notify
        if not config.urls:
            return listener
        from service.notify import AppriseSender, Notifier, Policy

        urls = [self.resolve(ref, where=f"notify.urls[{index}]") for index, ref in enumerate(config.urls)]
        notifier = Notifier(
            inner=listener,
            sender=AppriseSender(urls, timeout=config.timeout),
            policy=Policy(
                failures_in_a_row=config.failures_in_a_row, expiring_within=config.expiring_within, period=config.period
            ),
            clock=self.clock,
            allowance=self._allowance_of,
            counters=self.metrics,
        )
        self._closers.append(("notifier", notifier.close))
        return notifier

    def require_schema(self) -> None:
        from service.audit.schema import require_head

        require_head(self.engine)

    def close(self) -> None:
        """Close what was built, newest first; a failure to close one thing never stops the rest."""
        while self._closers:
            name, close = self._closers.pop()
            try:
                close()
            except Exception as e:  # noqa: BLE001 (closing is best effort, and logged)
                log.warning("app.close_failed", component=name, error=type(e).__name__)

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _schedule(secret: SecretSpec) -> ScheduleSpec:
    assert secret.schedule is not None, "resolved by Settings.spec_of (load_settings refuses a secret without one)"
    return secret.schedule


def probe_dependencies(settings: Settings) -> int:
    """`rotator check` online: reach Vault, the database and every target's XSUAA; 0, 3, or 2 on a config error."""
    results: list[tuple[str, str]] = []
    with App(settings) as app:
        results.append(("vault", _probe(lambda: app.vault_session.check())))  # noqa: PLW0108 (built inside the probe)
        results.append(("database", _probe(app.require_schema)))
        for target in settings.targets:
            results.append((f"aicore {target}", _probe(lambda t=target: app.store(t).check())))  # type: ignore[misc]
        sources = _probe_sources(app, settings) if results[0][1] == "ok" else []
    for name, outcome in [*results, *sources]:
        print(f"{'ok  ' if outcome == 'ok' else 'FAIL'} {name}: {outcome}")  # noqa: T201 (a command's output)
    if any(outcome.startswith(f"{ConfigError.code}:") for _, outcome in results):
        return 2  # e.g. a service key read from Vault with a cleartext URL: the config, not the network
    if not all(outcome == "ok" for _, outcome in results):
        return 3
    return 0 if all(outcome == "ok" for _, outcome in sources) else 2  # reachable, but a source can't be read


def _probe_sources(app: App, settings: Settings) -> list[tuple[str, str]]:
    """Read every distinct source once (values never printed): a path, field or policy problem shows here."""
    users: dict[Any, list[str]] = {}
    first: dict[Any, Any] = {}
    for secret in settings.secrets:
        users.setdefault(secret.source.ident, []).append(secret.name)
        first.setdefault(secret.source.ident, secret.source)
    return [
        (f"source {source.describe()} ({', '.join(users[ident])})", _probe(partial(app.vault_source.read, source)))
        for ident, source in first.items()
    ]


def _probe(check: Callable[[], object]) -> str:
    try:
        check()
    except RotatorError as e:
        return f"{e.code}: {e}"
    return "ok"
