"""Typed settings: one TOML file, every value overridable by ``ROTATOR_*`` variables.

``load_settings(path)`` is the one entry point. It reads the TOML file, lets environment
variables override any key (``ROTATOR_VAULT__ADDRESS``, ``ROTATOR_ROTATION__MAX_CONCURRENCY``;
tables and lists as JSON, e.g. ``ROTATOR_TARGETS='{"eu": {...}}'``), validates everything,
and raises one ``ConfigError`` that lists every problem with the file, the key path and
what is wrong. Secret values never sit in the file: fields that hold one take a
reference, ``{file = "..."}``, ``{env = "..."}`` or ``{vault = {path = "...", field = "..."}}``.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Hashable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol, TypeVar

import tomli  # tomllib's parser compiled (mypyc): the configuration in a third of tomllib's time
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from service.errors import ConfigError, ConfigIssue
from service.model import (
    OnUnreachable,
    RotationKey,
    ScheduleSpec,
    SecretSpec,
    SourceSpec,
    VerifyPolicy,
    WindowSpec,
    format_duration,
    parse_duration,
    secret_name_problem,
    spec_pairs,
)
from service.transport import cleartext_rule

_T = TypeVar("_T", bound=Hashable)
_S = TypeVar("_S")
_S_co = TypeVar("_S_co", covariant=True)


class _Part(Hashable, Protocol[_S_co]):
    """A frozen configuration model with a spec (a schedule, a policy, a window)."""

    def spec(self) -> _S_co: ...


ENV_PREFIX = "ROTATOR_"
CONFIG_ENV = "ROTATOR_CONFIG"

TARGET_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,62}\Z")
REGISTRY_HOST_RE = re.compile(
    r"^(?:https?://)?[A-Za-z0-9](?:[A-Za-z0-9.\-]*[A-Za-z0-9])?(?::[0-9]{1,5})?(?:/[A-Za-z0-9._\-/]*)?\Z"
)

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- references to secret values -------------------------------------------------


class VaultRef(_Model):
    """A field of a KV secret in Vault."""

    mount: str = "secret"
    path: str
    field: str
    kv_version: Literal[1, 2] = 2


class SecretRef(_Model):
    """Where a secret value lives: exactly one of ``file``, ``env`` or ``vault``."""

    file: Path | None = None
    env: str | None = None
    vault: VaultRef | None = None

    @model_validator(mode="before")
    @classmethod
    def _refuse_inline(cls, data: Any) -> Any:
        if isinstance(data, str | int | float):
            raise ValueError(  # noqa: TRY004 (pydantic reports ValueError as a validation error)
                "inline secret values are not allowed; reference the value instead: "
                '{file = "/path"}, {env = "VAR"} or {vault = {path = "...", field = "..."}}'
            )
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        given = [k for k in ("file", "env", "vault") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of file, env or vault")
        return self

    def describe(self) -> str:
        """A safe description of where the value lives (never the value)."""
        if self.file is not None:
            return f"file {self.file}"
        if self.env is not None:
            return f"env {self.env}"
        assert self.vault is not None
        return f"vault {self.vault.mount}/{self.vault.path}#{self.vault.field}"


# --- Vault -----------------------------------------------------------------------


class VaultAuthConfig(_Model):
    """How the service logs in to Vault. ``mount`` defaults to the method's name."""

    method: Literal["token", "approle", "kubernetes", "jwt"] = "token"
    mount: str | None = None
    token: SecretRef | None = None  # method = token
    role_id: str | None = None  # method = approle (an identifier, not a secret)
    secret_id: SecretRef | None = None  # method = approle
    role: str | None = None  # methods kubernetes and jwt
    jwt: SecretRef | None = None  # kubernetes / jwt: read again at every login

    @model_validator(mode="after")
    def _needs(self) -> VaultAuthConfig:
        required = {
            "token": ("token",),
            "approle": ("role_id", "secret_id"),
            "kubernetes": ("role",),
            "jwt": ("role", "jwt"),
        }[self.method]
        missing = [name for name in required if getattr(self, name) is None]
        if missing:
            raise ValueError(f"auth method {self.method!r} needs {', '.join(missing)}")
        return self

    @property
    def mount_path(self) -> str:
        return self.mount or self.method

    @property
    def jwt_ref(self) -> SecretRef | None:
        if self.jwt is None and self.method == "kubernetes":
            return SecretRef(file=Path("/var/run/secrets/kubernetes.io/serviceaccount/token"))
        return self.jwt


class VaultConfig(_Model):
    address: str = "http://127.0.0.1:8200"
    namespace: str | None = None
    ca_cert: Path | None = None
    timeout: Duration = timedelta(seconds=10)
    auth: VaultAuthConfig = VaultAuthConfig(token=SecretRef(env="VAULT_TOKEN"))
    # Renew our token once this fraction of its TTL has passed.
    renew_at_fraction: float = Field(default=0.67, gt=0, lt=1)
    # Allow http:// to a host that is not loopback (the token then crosses in cleartext).
    insecure_http: bool = False

    @field_validator("address")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError(f"not an http(s) URL: {value!r}")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _cleartext(self) -> VaultConfig:
        problem = cleartext_rule(self.address, insecure_http=self.insecure_http, flag="vault.insecure_http").problem
        if problem:
            raise ValueError(problem)
        return self


# --- database and audit ----------------------------------------------------------


class DatabaseConfig(_Model):
    """PostgreSQL. Put no password in ``url``: use ``password`` (a reference) or a passfile."""

    url: str = "postgresql+psycopg://rotator@127.0.0.1:5432/rotator"
    password: SecretRef | None = None
    pool_size: int = Field(default=10, ge=1, le=200)
    connect_timeout: Duration = timedelta(seconds=5)

    @field_validator("url")
    @classmethod
    def _no_inline_password(cls, value: str) -> str:
        if not re.match(r"^postgres(?:ql)?(?:\+psycopg)?://", value):
            raise ValueError("must be a postgresql:// (or postgresql+psycopg://) URL")
        if re.match(r"^[^:]+://[^/@]*:[^/@]*@", value):
            raise ValueError(
                "inline password in the database URL; remove it and set "
                'database.password = {env = "..."} or {file = "..."}'
            )
        return value


KEY_ID_PATTERN = r"^[A-Za-z0-9_.\-]{1,32}$"


class PreviousAuditKey(_Model):
    """An HMAC key used before the current one, with the id its fingerprints carry."""

    key_id: str = Field(pattern=KEY_ID_PATTERN)
    key: SecretRef


class TransitSigning(_Model):
    """Sign anchors with a Vault Transit key (type ed25519 or ecdsa): the key never leaves Vault."""

    kind: Literal["transit"]
    mount: str = "transit"
    key: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,128}$")


class Ed25519Signing(_Model):
    """Sign anchors with an Ed25519 private key (PEM, PKCS#8), referenced like every secret."""

    kind: Literal["ed25519"]
    key: SecretRef


class AnchorVaultSink(_Model):
    """A KV v2 path whose versions are the anchors (Vault's own audit log records each write)."""

    mount: str = "secret"
    path: str = "rotator/anchors"


class AnchorsConfig(_Model):
    """Where the signed chain head goes after each sweep that moved it."""

    sinks: list[Literal["log", "file", "vault"]] = ["log"]
    file: Path | None = None
    vault: AnchorVaultSink = AnchorVaultSink()
    signing: Annotated[TransitSigning | Ed25519Signing, Field(discriminator="kind")] | None = None

    @model_validator(mode="after")
    def _complete(self) -> AnchorsConfig:
        if "file" in self.sinks and self.file is None:
            raise ValueError('the "file" sink needs file = "/path/anchors.jsonl"')
        if set(self.sinks) - {"log"} and self.signing is None:
            raise ValueError("the file and vault sinks keep signed anchors: set signing (transit or ed25519)")
        return self


class AuditConfig(_Model):
    """The HMAC key that fingerprints credentials, and its id (written in every fingerprint)."""

    key: SecretRef = SecretRef(env="ROTATOR_AUDIT_KEY")
    key_id: str = Field(default="k1", pattern=KEY_ID_PATTERN)
    # Keys used before ``key``: a credential fingerprinted under one of them is recognised
    # as unchanged, so changing the key does not rewrite every secret (docs/audit.md).
    previous_keys: list[PreviousAuditKey] = Field(default_factory=list)

    @model_validator(mode="after")
    def _distinct_ids(self) -> AuditConfig:
        ids = [previous.key_id for previous in self.previous_keys]
        if self.key_id in ids:
            raise ValueError(f"previous_keys repeats the current key_id {self.key_id!r}; give each key its own id")
        repeated = sorted({key_id for key_id in ids if ids.count(key_id) > 1})
        if repeated:
            raise ValueError(f"previous_keys repeats key_id {', '.join(map(repr, repeated))}")
        return self

    anchors: AnchorsConfig = AnchorsConfig()


# --- targets, sources, secrets ---------------------------------------------------


class TargetConfig(_Model):
    """One AI Core tenant, reached with one service key."""

    service_key: SecretRef
    timeout: Duration = timedelta(seconds=30)
    max_concurrency: int | None = Field(default=None, ge=1, le=64)
    # CA bundle for XSUAA's and the AI API's TLS certificates (default: the system store).
    ca_cert: Path | None = None
    # Allow http:// XSUAA / AI_API_URL to a host that is not loopback (checked when the key is read).
    insecure_http: bool = False


class SourceConfig(_Model):
    """One Vault location holding registry credentials and how its fields map."""

    kind: Literal["kv2", "kv1", "dynamic"] = "kv2"
    mount: str = "secret"
    path: str
    version: int | None = Field(default=None, ge=1)  # KV v2 only: pin a version (rollback)
    username_field: str = "username"
    password_field: str = "password"  # noqa: S105 (a field name, not a password)
    registry_field: str | None = None
    expiry_field: str | None = None

    @model_validator(mode="after")
    def _version_only_for_kv2(self) -> SourceConfig:
        if self.version is not None and self.kind != "kv2":
            raise ValueError(f"version can only be pinned for kind kv2, not {self.kind}")
        return self

    @property
    def ident(self) -> tuple[str, str, str, int | None]:
        """Sources equal by this are read once per sweep."""
        return (self.kind, self.mount.strip("/"), self.path.strip("/"), self.version)

    def describe(self) -> str:
        pinned = f"@v{self.version}" if self.version else ""
        return f"{self.kind}:{self.mount.strip('/')}/{self.path.strip('/')}{pinned}"

    def spec(self) -> SourceSpec:
        return SourceSpec(
            kind=self.kind,
            mount=self.mount,
            path=self.path,
            version=self.version,
            username_field=self.username_field,
            password_field=self.password_field,
            registry_field=self.registry_field,
            expiry_field=self.expiry_field,
        )


class ScheduleConfig(_Model):
    """Exactly one of ``every`` (an interval) or ``cron`` (five fields)."""

    every: Duration | None = None
    cron: str | None = None
    timezone: str = "UTC"
    jitter: Duration = timedelta(seconds=0)
    # Cron only: spread secrets over this window by a fixed phase from their name.
    max_phase: Duration = timedelta(minutes=5)

    @model_validator(mode="after")
    def _one_kind(self) -> ScheduleConfig:
        if (self.every is None) == (self.cron is None):
            raise ValueError('give exactly one of every (e.g. "6h") or cron (e.g. "0 */6 * * *")')
        if self.every is not None and self.every < timedelta(seconds=1):
            raise ValueError("every must be at least 1s")
        if self.every is not None and self.jitter >= self.every:
            raise ValueError("jitter must be shorter than the interval (every)")
        if self.cron is not None:
            from service.scheduler import cron_problem  # apscheduler only where needed

            problem = cron_problem(self.cron, self.timezone)
            if problem:
                raise ValueError(f"bad cron expression {self.cron!r}: {problem}")
        return self

    def spec(self) -> ScheduleSpec:
        return ScheduleSpec(**self.model_dump())

    def describe(self) -> str:
        return (
            f"every {format_duration(self.every)}" if self.every is not None else f"cron {self.cron!r} {self.timezone}"
        )


class WindowConfig(_Model):
    """A time window, as ESO's syncWindows: from each ``cron`` start, for ``duration``, in ``timezone``.

    ``deny``: nothing is written inside it. ``allow``: once any allow window applies, writes
    happen only inside one. A run that falls outside what is allowed waits for the window's end.
    """

    kind: Literal["deny", "allow"] = "deny"
    cron: str
    duration: Duration
    timezone: str = "UTC"

    @model_validator(mode="after")
    def _valid(self) -> WindowConfig:
        if self.duration <= timedelta(0):
            raise ValueError('duration must be positive (e.g. "2h")')
        if self.duration > timedelta(days=31):
            raise ValueError("duration must be at most 31 days")
        from service.scheduler import cron_problem  # apscheduler only where needed

        problem = cron_problem(self.cron, self.timezone)
        if problem:
            raise ValueError(f"bad cron expression {self.cron!r}: {problem}")
        return self

    def describe(self) -> str:
        return self.spec().describe()

    def spec(self) -> WindowSpec:
        return WindowSpec(kind=self.kind, cron=self.cron, duration=self.duration, timezone=self.timezone)


class VerifyConfig(_Model):
    """Check a new credential against the registry's v2 API before it is written."""

    mode: Literal["none", "registry"] = "none"
    canary_repository: str | None = None
    on_unreachable: Literal["fail", "proceed"] = "fail"
    recheck_every: Duration | None = None
    timeout: Duration = timedelta(seconds=10)
    ca_cert: Path | None = None

    def spec(self) -> VerifyPolicy:
        return VerifyPolicy(**{**self.model_dump(), "on_unreachable": OnUnreachable(self.on_unreachable)})


class SharedSpecs:
    """One spec for each distinct schedule, policy, window and target list, however many entries use it.

    5,000 entries on the default schedule and policy held 5,000 equal copies of each (about
    1 MB of the worker's memory), and building each cost a ``model_dump``.
    """

    def __init__(self) -> None:
        self._specs: dict[Hashable, Any] = {}

    def spec(self, part: _Part[_S]) -> _S:
        """``part.spec()``, built once per equal ``part`` (the models are frozen, hence hashable)."""
        spec: _S | None = self._specs.get(part)
        if spec is None:
            spec = self._specs[part] = part.spec()
        return spec

    def value(self, value: _T) -> _T:
        """``value``, or an equal one seen before."""
        kept: _T = self._specs.setdefault(("value", value), value)
        return kept


class SecretConfig(_Model):
    """One AI Core Docker registry secret, fed by one source, kept on one or more targets."""

    def spec(self, *, default_schedule: ScheduleConfig | None = None, shared: SharedSpecs | None = None) -> SecretSpec:
        """This entry as the use case sees it (plain values), with its schedule or the default one.

        ``shared``: the parts already built for other entries, reused where equal.
        """
        shared = shared if shared is not None else SharedSpecs()
        schedule = self.schedule or default_schedule
        return SecretSpec(
            name=self.name,
            targets=shared.value(tuple(self.targets)),
            registries=shared.value(tuple(self.registries)),
            source=self.source.spec(),
            create_missing=self.create_missing,
            verify=shared.spec(self.verify),
            schedule=shared.spec(schedule) if schedule is not None else None,
            windows=shared.value(tuple(shared.spec(window) for window in self.windows)),
        )

    name: str
    targets: list[str] = Field(min_length=1)
    registries: list[str] = Field(default_factory=list)
    source: SourceConfig
    schedule: ScheduleConfig | None = None
    create_missing: bool = False
    verify: VerifyConfig = VerifyConfig()
    # Allow http:// registries on hosts that are not loopback (verification sends the password there).
    insecure_http: bool = False
    windows: list[WindowConfig] = Field(default_factory=list)  # beside the global [[windows]]

    @field_validator("name")
    @classmethod
    def _aicore_name(cls, value: str) -> str:
        problem = secret_name_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("registries")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        bad = [host for host in value if not REGISTRY_HOST_RE.match(host)]
        if bad:
            raise ValueError(f"not a registry host: {', '.join(repr(b) for b in bad)}")
        return value

    @model_validator(mode="after")
    def _cleartext(self) -> SecretConfig:
        rules = [cleartext_rule(host, insecure_http=False, flag="insecure_http") for host in self.registries]
        refused = [rule.problem for rule in rules if rule.problem]
        if refused and not self.insecure_http:
            raise ValueError(f"registries: {refused[0]}")
        if self.insecure_http and not any(host.lower().startswith("http://") for host in self.registries):
            raise ValueError("insecure_http = true, but no registry of this secret is an http:// URL; remove it")
        return self


# --- running ---------------------------------------------------------------------


class RetryConfig(_Model):
    attempts: int = Field(default=4, ge=1, le=20)
    base_delay: Duration = timedelta(milliseconds=500)
    max_delay: Duration = timedelta(seconds=30)
    total: Duration = timedelta(seconds=90)


class RotationConfig(_Model):
    # Rotations in flight at once. 64 keeps one core busy at 100 ms per AI Core request
    # (bench/sweep.py): a rotation costs a few ms of CPU and waits on AI Core the rest.
    max_concurrency: int = Field(default=64, ge=1, le=512)
    per_target_concurrency: int = Field(default=4, ge=1, le=64)
    lease_ttl: Duration = timedelta(minutes=5)
    shutdown_grace: Duration = timedelta(seconds=30)
    misfire_grace: Duration = timedelta(minutes=10)
    retry: RetryConfig = RetryConfig()
    # Dynamic sources: rotate once this fraction of the lease has passed.
    lease_renew_fraction: float = Field(default=0.67, gt=0, lt=1)
    # A failed rotation is tried again after this, doubling per failure in a row, up to the max.
    failure_backoff: Duration = timedelta(seconds=30)
    failure_backoff_max: Duration = timedelta(hours=1)
    # Every live worker closes open intents whose pair is free (owner dead, or its outcome write
    # failed) this often, and rotates those pairs again; keep it well under lease_ttl.
    reconcile_every: Duration = timedelta(seconds=15)
    # /livez fails when the worker makes no progress this long although its dependencies answer
    # (a scheduler that stopped firing, an instance lock it cannot take back).
    progress_timeout: Duration = timedelta(minutes=2)


class HttpConfig(_Model):
    listen: str = Field(default="127.0.0.1:9464", pattern=r"^[^\s:]*:\d{1,5}$")
    enabled: bool = True
    # When set, /status and /metrics need "Authorization: Bearer <token>"; /livez and /readyz stay open.
    token: SecretRef | None = None


class NotifyConfig(_Model):
    """Notifications through Apprise URLs (Slack, Teams, PagerDuty, e-mail, a JSON webhook...).

    Each URL is a reference (``{env = ...}``, ``{file = ...}`` or ``{vault = ...}``): webhook URLs carry tokens.
    """

    urls: list[SecretRef] = Field(default_factory=list)  # none: notifications are off
    failures_in_a_row: int = Field(default=3, ge=1, le=1000)
    expiring_within: Duration = timedelta(days=1)  # a credential whose source says it expires sooner
    period: Duration = timedelta(hours=1)  # at most one message per pair, per kind, per period
    timeout: Duration = timedelta(seconds=10)


class LogConfig(_Model):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class Defaults(_Model):
    schedule: ScheduleConfig | None = None


class Settings(BaseSettings):
    """The whole configuration. Build it with ``load_settings``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    instance: str | None = None  # defaults to the host (pod) name
    vault: VaultConfig = VaultConfig()
    database: DatabaseConfig = DatabaseConfig()
    audit: AuditConfig = AuditConfig()
    rotation: RotationConfig = RotationConfig()
    http: HttpConfig = HttpConfig()
    notify: NotifyConfig = NotifyConfig()
    log: LogConfig = LogConfig()
    defaults: Defaults = Defaults()
    targets: dict[str, TargetConfig] = Field(default_factory=dict)
    secrets: list[SecretConfig] = Field(default_factory=list)
    windows: list[WindowConfig] = Field(default_factory=list)  # deny / allow windows for every secret

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's values arrive as init kwargs; environment variables win over them.
        return (env_settings, init_settings)

    def schedule_of(self, secret: SecretConfig) -> ScheduleConfig:
        schedule = secret.schedule or self.defaults.schedule
        assert schedule is not None, "validated by load_settings"
        return schedule

    def without_secrets(self) -> Settings:
        """These settings with no ``[[secrets]]`` entries, for a process that keeps them as specs.

        The long-running worker does: at 5,000 entries the pydantic models are about 9 MB of
        its RSS, and everything it does after start-up reads the specs (``SecretSpec``).
        """
        return self.model_copy(update={"secrets": []})

    def spec_of(self, secret: SecretConfig, shared: SharedSpecs | None = None) -> SecretSpec:
        """The entry as the use case sees it, with its resolved schedule (its own or the default)."""
        return secret.spec(default_schedule=self.defaults.schedule, shared=shared)

    def specs(self) -> list[SecretSpec]:
        """Every entry's spec, in configuration order, equal parts shared (``SharedSpecs``)."""
        shared = SharedSpecs()
        return [self.spec_of(secret, shared) for secret in self.secrets]

    def spec_pairs(self) -> dict[RotationKey, SecretSpec]:
        """Every configured (target, secret) and the entry that feeds it, as the use case sees them."""
        return spec_pairs(self.specs())

    def pairs(self) -> dict[RotationKey, SecretConfig]:
        """Every configured (target, secret) and the ``[[secrets]]`` entry that feeds it.

        One name may be kept on many targets, each by its own entry and source: the pair,
        not the name, is the unit of scheduling, state and leases.
        """
        return {RotationKey(target, secret.name): secret for secret in self.secrets for target in secret.targets}

    def secret(self, name: str) -> SecretConfig:
        for secret in self.secrets:
            if secret.name == name:
                return secret
        raise KeyError(name)


# --- loading -----------------------------------------------------------------------


def config_path(explicit: str | os.PathLike[str] | None) -> Path | None:
    """``--config`` wins over ``ROTATOR_CONFIG``; None means built-in defaults only."""
    chosen = explicit or os.environ.get(CONFIG_ENV)
    return Path(chosen) if chosen else None


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomli.load(handle)
    except FileNotFoundError:
        raise ConfigError(str(path), [ConfigIssue("", "file not found")]) from None
    except PermissionError:
        raise ConfigError(str(path), [ConfigIssue("", "permission denied reading the file")]) from None
    except IsADirectoryError:
        raise ConfigError(str(path), [ConfigIssue("", "is a directory, not a TOML file")]) from None
    except tomli.TOMLDecodeError as e:
        raise ConfigError(str(path), [ConfigIssue("", f"not valid TOML: {e}")]) from None


def load_settings(
    path: Path | None, *, environ: Mapping[str, str] | None = None, now: datetime | None = None
) -> Settings:
    """Read, override from the environment, validate; raise one ConfigError with every issue."""
    source = str(path) if path else "(built-in defaults)"
    raw = read_toml(path) if path else {}
    issues = cross_reference_issues(raw)
    settings: Settings | None = None
    try:
        settings = Settings(**raw)
    except ValidationError as e:
        issues = _validation_issues(e, raw, environ if environ is not None else os.environ) + issues
    except SettingsError as e:
        issues = env_override_issues(e, environ if environ is not None else os.environ) + issues
    if settings is not None:
        issues += schedule_issues(settings, now=now or datetime.now(UTC))
        issues += registry_issues(settings)
    errors = [issue for issue in issues if issue.severity == "error"]
    if errors:
        raise ConfigError(source, errors)
    assert settings is not None
    return settings


def _validation_issues(error: ValidationError, raw: Mapping[str, Any], environ: Mapping[str, str]) -> list[ConfigIssue]:
    issues = []
    for item in error.errors(include_url=False, include_input=False):
        loc = tuple(item["loc"])
        # Pydantic appends the validator's class name to the path for some errors.
        loc = tuple(part for part in loc if not (isinstance(part, str) and part.startswith("function-")))
        problem = _problem_text(item)
        env_name = ENV_PREFIX + "__".join(str(p).upper() for p in loc if isinstance(p, str))
        if env_name in environ:
            problem += f" (value set by {env_name})"
        issues.append(ConfigIssue(key_path(loc, raw), problem))
    return issues


def _problem_text(item: Any) -> str:
    kind = item["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    message = str(item["msg"])
    return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def key_path(loc: Iterable[Any], raw: Mapping[str, Any]) -> str:
    """Render a pydantic location as a TOML key path; list items show the secret's name."""
    parts: list[str] = []
    node: Any = raw
    for part in loc:
        if isinstance(part, int):
            label = f"[{part}]"
            item = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                label = f"[{part}] ({item['name']})"
            parts.append(label)
            node = item
        else:
            parts.append(("." if parts else "") + str(part))
            node = node.get(part) if isinstance(node, dict) else None
    return "".join(parts)


def cross_reference_issues(raw: Mapping[str, Any]) -> list[ConfigIssue]:
    """Checks across sections, made on the raw file so they show beside field errors."""
    targets = raw.get("targets", {})
    target_names = set(targets) if isinstance(targets, dict) else set()
    issues = [
        ConfigIssue(f"targets.{name}", "target names use letters, digits, '.', '_' and '-'")
        for name in target_names
        if not TARGET_NAME_RE.match(name)
    ]
    secrets = raw.get("secrets", [])
    if not isinstance(secrets, list):
        return issues
    seen: dict[tuple[str, str], int] = {}
    for index, secret in enumerate(secrets):
        if not isinstance(secret, dict) or not isinstance(secret.get("targets", []), list):
            continue
        name = secret.get("name")
        where = f"secrets[{index}]" + (f" ({name})" if isinstance(name, str) else "")
        for target in secret.get("targets", []):
            if not isinstance(target, str):
                continue
            if target not in target_names:
                issues.append(
                    ConfigIssue(f"{where}.targets", f"names undefined target {target!r} (define [targets.{target}])")
                )
            if isinstance(name, str):
                first = seen.setdefault((target, name), index)
                if first != index:
                    issues.append(
                        ConfigIssue(
                            where, f"secret {name!r} on target {target!r} is already defined by secrets[{first}]"
                        )
                    )
    return issues


def schedule_issues(settings: Settings, *, now: datetime | None = None) -> list[ConfigIssue]:
    """Secrets without a schedule; with ``now``, also schedules that would never run in practice."""
    issues = [
        ConfigIssue(f"secrets[{index}] ({secret.name}).schedule", "no schedule: set it here or in [defaults.schedule]")
        for index, secret in enumerate(settings.secrets)
        if secret.schedule is None and settings.defaults.schedule is None
    ]
    if now is not None:
        issues += schedule_reach_issues(settings, now=now)
    return issues


SHORT_INTERVAL = timedelta(minutes=1)


def schedule_reach_issues(settings: Settings, *, now: datetime) -> list[ConfigIssue]:
    """Schedules in use with no run within a year of ``now``."""
    from service.scheduler import reach_problem  # apscheduler only where needed

    issues: list[ConfigIssue] = []
    verdicts: dict[tuple[timedelta | None, str | None, str], str | None] = {}  # many secrets share a schedule
    for where, schedule, note in schedules_in_use(settings):
        same = (schedule.every, schedule.cron, schedule.timezone)
        if same not in verdicts:
            verdicts[same] = reach_problem(schedule, now=now)
        if problem := verdicts[same]:
            issues.append(ConfigIssue(where, f"{schedule.describe()} {problem}{note}"))
    return issues


def short_interval_issues(settings: Settings) -> list[ConfigIssue]:
    """Warnings: a schedule in use whose interval is under a minute reads Vault at every run."""
    return [
        ConfigIssue(where, f"{schedule.describe()} is under one minute: every run reads Vault{note}", "warning")
        for where, schedule, note in schedules_in_use(settings)
        if schedule.every is not None and schedule.every < SHORT_INTERVAL
    ]


def schedules_in_use(settings: Settings) -> list[tuple[str, ScheduleConfig, str]]:
    """(key path, schedule, note): each secret's own schedule, and [defaults.schedule] once, noting its users."""
    secrets = list(enumerate(settings.secrets))
    owned = [(f"secrets[{i}] ({s.name}).schedule", s.schedule, "") for i, s in secrets if s.schedule is not None]
    users = [f"secrets[{i}] ({s.name})" for i, s in secrets if s.schedule is None]
    default = settings.defaults.schedule
    return owned + ([("defaults.schedule", default, _used_by(users))] if default is not None and users else [])


def _used_by(users: list[str], shown: int = 3) -> str:
    more = f" and {len(users) - shown} more" if len(users) > shown else ""
    return f" (used by {', '.join(users[:shown])}{more})"


def registry_issues(settings: Settings) -> list[ConfigIssue]:
    """Secrets that could never be rendered: no registry host configured and none read from the source."""
    return [
        ConfigIssue(
            f"secrets[{index}] ({secret.name}).registries",
            'no registry host: list the hosts here (registries = ["registry.example.com"]) '
            "or name the source field that holds one (source.registry_field)",
        )
        for index, secret in enumerate(settings.secrets)
        if not secret.registries and secret.source.registry_field is None
    ]


def env_override_issues(error: SettingsError, environ: Mapping[str, str]) -> list[ConfigIssue]:
    """Name the ``ROTATOR_*`` variable whose table or list is not valid JSON (never its value)."""
    found = re.search(r'field "([^"]+)"', str(error))
    field = found.group(1) if found else ""
    prefix = (ENV_PREFIX + field).upper()
    chosen = {
        name: value
        for name, value in environ.items()
        if name.upper() == prefix or name.upper().startswith(prefix + "__")
    }
    issues = [issue for name, value in sorted(chosen.items()) if (issue := _json_issue(name, value))]
    if not issues:
        variables = f"{prefix} or {prefix}__*" if field else f"{ENV_PREFIX}*"
        issues.append(ConfigIssue(field, f"cannot read the value set by {variables}: not valid JSON"))
    return issues


def _json_issue(name: str, value: str) -> ConfigIssue | None:
    """A table or list set by variable ``name`` that does not parse; scalars are left to validation."""
    if not value.strip().startswith(("{", "[")):
        return None
    try:
        json.loads(value)
    except ValueError as e:  # JSONDecodeError's text gives the position, never the document
        where = ".".join(name.upper().removeprefix(ENV_PREFIX).lower().split("__"))
        return ConfigIssue(where, f"{name} is not valid JSON ({e}); tables and lists take JSON here")
    return None


# --- environment variables the settings do not know --------------------------------

# ROTATOR_ variables that are not settings: the ones the project itself reads or points
# references at. Anything else with the prefix whose section is unknown is likely a typo.
NOT_SETTINGS = frozenset(
    {
        CONFIG_ENV,
        "ROTATOR_AUDIT_KEY",
        "ROTATOR_OPERATOR",
        "ROTATOR_VAULT_TOKEN",
        "ROTATOR_DB_PASSWORD",
        "ROTATOR_DATABASE_URL",
        "ROTATOR_REGISTRY_BINARY",
        "ROTATOR_IMAGE",
    }
)
NOT_SETTINGS_PREFIXES = ("ROTATOR_TEST_", "ROTATOR_BENCH_")


def unknown_env_issues(settings: Settings | None, *, environ: Mapping[str, str] | None = None) -> list[ConfigIssue]:
    """A warning for each ROTATOR_ variable whose section the settings do not know."""
    env = environ if environ is not None else os.environ
    sections = {name.upper() for name in Settings.model_fields}
    referenced = {ref.env for _, ref in secret_refs(settings)} if settings is not None else set()
    issues = []
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or name in NOT_SETTINGS or name in referenced:
            continue
        if name.startswith(NOT_SETTINGS_PREFIXES):
            continue
        rest = name.removeprefix(ENV_PREFIX)
        if rest.split("__", 1)[0] not in sections:
            issues.append(ConfigIssue(name, _unknown_env_problem(rest, sections), "warning"))
    return issues


def _unknown_env_problem(rest: str, sections: set[str]) -> str:
    problem = f"ignored: the settings have no section {rest.split('__', 1)[0].lower()!r}"
    for section in sorted(sections, key=len, reverse=True):
        if rest.startswith(section + "_") and not rest.startswith(section + "__"):
            return f"{problem} (did you mean {ENV_PREFIX}{section}__{rest.removeprefix(section + '_')}?)"
    return f"{problem} (sections: {', '.join(sorted(s.lower() for s in sections))})"


# --- local references (files and environment variables) -------------------------


def secret_refs(settings: Settings) -> list[tuple[str, SecretRef]]:
    """Every secret reference in the settings, with its key path."""
    auth = settings.vault.auth
    refs: list[tuple[str, SecretRef | None]] = [
        ("vault.auth.token", auth.token if auth.method == "token" else None),
        ("vault.auth.secret_id", auth.secret_id if auth.method == "approle" else None),
        ("vault.auth.jwt", auth.jwt_ref if auth.method in ("jwt", "kubernetes") else None),
        ("database.password", settings.database.password),
        ("audit.key", settings.audit.key),
        ("http.token", settings.http.token),
        ("audit.anchors.signing.key", _ed25519_key(settings.audit.anchors)),
    ]
    refs += [
        (f"audit.previous_keys[{index}] ({previous.key_id}).key", previous.key)
        for index, previous in enumerate(settings.audit.previous_keys)
    ]
    refs += [(f"targets.{name}.service_key", target.service_key) for name, target in settings.targets.items()]
    refs += [(f"notify.urls[{index}]", ref) for index, ref in enumerate(settings.notify.urls)]
    return [(where, ref) for where, ref in refs if ref is not None]


def _ed25519_key(anchors: AnchorsConfig) -> SecretRef | None:
    return anchors.signing.key if isinstance(anchors.signing, Ed25519Signing) else None


def local_ref_issues(settings: Settings, *, environ: Mapping[str, str] | None = None) -> list[ConfigIssue]:
    """Missing or unreadable files and unset variables; warn on files others can read."""
    env = environ if environ is not None else os.environ
    issues: list[ConfigIssue] = []
    for where, ref in secret_refs(settings):
        if ref.env is not None and not env.get(ref.env):
            issues.append(ConfigIssue(where, f"environment variable {ref.env} is not set"))
        if ref.file is not None:
            issues += _file_issues(where, ref.file)
    return issues


def _file_issues(where: str, path: Path) -> list[ConfigIssue]:
    try:
        mode = path.stat().st_mode
        with path.open("rb"):
            pass
    except FileNotFoundError:
        return [ConfigIssue(where, f"file {path} does not exist")]
    except PermissionError:
        return [ConfigIssue(where, f"file {path} is not readable by this user")]
    except IsADirectoryError:
        return [ConfigIssue(where, f"{path} is a directory, not a file")]
    if mode & stat.S_IROTH:
        return [ConfigIssue(where, f"file {path} holds a secret but is readable by everyone (chmod o-r)", "warning")]
    return []
