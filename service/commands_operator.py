"""Operator controls on the command line: ``pause``, ``resume``, ``rollback``, ``unpin``; who did it.

Every manual action records the operator (``--operator``, ``$ROTATOR_OPERATOR``, or the OS
user at this host) and a reason in the audit trail, beside the worker's own actor. Pauses
and pins live in PostgreSQL (``service.audit.controls``), so every replica obeys them at
once. Bad input (an unknown secret or target, a version Vault cannot give) is one line and
exit 2; asking for what is already so (pausing a paused scope) says so and exits 0.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from service.controls import ANY, Pause, Pin, Scope, default_operator
from service.errors import ConfigError, ConfigIssue, SourceError
from service.model import AuditEvent, EventType, RegistryCredential, RotationKey, SecretSpec, Trigger

if TYPE_CHECKING:
    from service.app import App
    from service.config import SecretConfig, Settings
    from service.rotation import SweepReport, SweepRequest

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

Handler = Callable[[argparse.Namespace], int]


def _say(line: str) -> None:
    """A command's output, on standard output."""
    sys.stdout.write(f"{line}\n")


# --- parsers ------------------------------------------------------------------------


def who(parser: argparse.ArgumentParser, *, reason_required: bool = False) -> None:
    """``--operator`` and ``--reason``: recorded in the audit rows of a manual action."""
    parser.add_argument("--operator", metavar="NAME", help="who is acting (default: $ROTATOR_OPERATOR, else user@host)")
    reason = "why, in your words; audited (required, no default)" if reason_required else "why; audited (default: none)"
    parser.add_argument("--reason", metavar="TEXT", required=reason_required, help=reason)


def add_once_options(once: argparse.ArgumentParser) -> None:
    """The operator options of ``rotator once``."""
    who(once)
    once.add_argument(
        "--ignore-pause",
        action="store_true",
        help="rotate paused pairs too; each write records the pause it overrode (a `forced` row)",
    )


_DESCRIPTIONS = {
    "pause": "Stop rotating a pair, a secret on every target, a target, or everything (--all, the kill switch). "
    "Kept in PostgreSQL: every replica skips the pair from its next sweep on. Audited as `paused`.",
    "resume": "Lift the pause made with the same --secret / --target / --all; say which pairs another pause "
    "still holds. Audited as `resumed`.",
    "rollback": "Read KV v2 version N of the secret's source, pin the pair(s) to it in PostgreSQL and write it "
    "now with trigger `rollback`; the worker keeps reading N until `rotator unpin`.",
    "unpin": "Remove a rollback's pin (audited as `unpinned`) and rotate the pair to the current version now.",
    "plan": "What `rotator once` would do for each pair: reads Vault, renders, fingerprints, verifies at the "
    "registry, and asks AI Core read-only (token, quota, the secret's existence). Writes nothing anywhere.",
}


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    """``pause``, ``resume``, ``rollback``, ``unpin`` and ``plan``."""

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, parents=[common], help=help_text, description=_DESCRIPTIONS[name])

    for name, help_text, needs_reason in (
        ("pause", "stop rotating a secret, a target or everything (every replica, at once)", True),
        ("resume", "lift a pause made with the same --secret / --target / --all", False),
    ):
        parser = add(name, help_text)
        _scope_options(parser)
        who(parser, reason_required=needs_reason)
    rollback = add("rollback", "write an earlier KV v2 version and pin the pair to it")
    _pair_options(rollback)
    rollback.add_argument(
        "--to-version", type=_version, required=True, metavar="N", help="the KV v2 version (required, no default)"
    )
    who(rollback, reason_required=True)
    unpin = add("unpin", "return a pinned pair to the current version")
    _pair_options(unpin)
    who(unpin)
    plan = add("plan", "what `once` would do, asking Vault, the registry and AI Core read-only")
    plan.add_argument(
        "--secret", action="append", default=[], metavar="NAME", help="only this secret (repeatable; default: all)"
    )
    plan.add_argument(
        "--target", action="append", default=[], metavar="NAME", help="only this target (repeatable; default: all)"
    )


def _scope_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--secret", metavar="NAME", help="this secret, on every target or on --target (default: none)")
    parser.add_argument("--target", metavar="NAME", help="this target, every secret or --secret (default: none)")
    parser.add_argument("--all", action="store_true", help="everything: the global kill switch")


def _pair_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--secret", metavar="NAME", required=True, help="the secret (required, no default)")
    parser.add_argument("--target", metavar="NAME", help="only this target (default: every target of the secret)")


def _version(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a version number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"KV v2 versions start at 1, not {value}")
    return value


# --- who and what -----------------------------------------------------------------------


def operator_of(args: argparse.Namespace) -> str:
    """``--operator``, else ``$ROTATOR_OPERATOR``, else user@host."""
    named = (getattr(args, "operator", None) or "").strip()
    return named or default_operator()


def _bad(option: str, problem: str) -> ConfigError:
    return ConfigError("command line", [ConfigIssue(option, problem)])


def _secret(settings: Settings, name: str) -> SecretConfig:
    try:
        return settings.secret(name)
    except KeyError:
        raise _bad("--secret", f"no secret named {name!r} in the configuration") from None


def _target(settings: Settings, name: str) -> str:
    if name not in settings.targets:
        raise _bad("--target", f"no target named {name!r} in the configuration")
    return name


def scope_of(settings: Settings, args: argparse.Namespace) -> Scope:
    """The scope named by ``--all`` or ``--secret`` / ``--target``; a ConfigError (exit 2) otherwise."""
    if args.all and (args.secret or args.target):
        raise _bad("--all", "--all stands alone: leave out --secret and --target")
    if args.all:
        return Scope()
    if not (args.secret or args.target):
        raise _bad("--secret", "name what to act on: --secret NAME, --target NAME (or both), or --all")
    secret = _secret(settings, args.secret) if args.secret else None
    target = _target(settings, args.target) if args.target else ANY
    if secret is not None and target != ANY and target not in secret.targets:
        raise _bad("--target", f"secret {secret.name!r} is not kept on target {target!r}")
    return Scope(target=target, secret=secret.name if secret else ANY)


def pairs_of(settings: Settings, scope: Scope) -> list[RotationKey]:
    """The configured pairs ``scope`` covers."""
    keys = [RotationKey(target, secret.name) for secret in settings.secrets for target in secret.targets]
    return [key for key in keys if scope.covers(key)]


def _pair_keys(settings: Settings, args: argparse.Namespace) -> tuple[SecretConfig, list[RotationKey]]:
    secret = _secret(settings, args.secret)
    if args.target is not None:
        if _target(settings, args.target) not in secret.targets:
            raise _bad("--target", f"secret {secret.name!r} is not kept on target {args.target!r}")
        return secret, [RotationKey(args.target, secret.name)]
    return secret, [RotationKey(target, secret.name) for target in secret.targets]


def _event(app: App, kind: EventType, *, key: RotationKey, **fields: object) -> AuditEvent:
    from service.engine.context import new_run_id

    return AuditEvent(
        event=kind,
        run_id=new_run_id(),
        target=key.target,
        api_host=fields.pop("api_host", ""),  # type: ignore[arg-type]
        secret=key.secret,
        registries=fields.pop("registries", ()),  # type: ignore[arg-type]
        trigger=fields.pop("trigger", Trigger.MANUAL),  # type: ignore[arg-type]
        actor=app.actor,
        **fields,  # type: ignore[arg-type]  # keyword names are AuditEvent's own
    )


def _load(args: argparse.Namespace) -> Settings:
    from service.cli import load

    return load(args)


def _app(settings: Settings) -> App:
    from service.app import App

    return App(settings)


# --- pause and resume ---------------------------------------------------------------------


def cmd_pause(args: argparse.Namespace) -> int:
    """``rotator pause``: audited, obeyed by every replica's next sweep."""
    settings = _load(args)
    scope = scope_of(settings, args)
    operator, reason = operator_of(args), args.reason.strip()
    if not reason:
        raise _bad("--reason", "say why (it is audited)")
    with _app(settings) as app:
        app.require_schema()
        event = _event(
            app,
            EventType.PAUSED,
            key=RotationKey(scope.target, scope.secret),
            registries=_registries(settings, scope),
            operator=operator,
            reason=reason,
            message=f"paused {scope}",
        )
        already = app.controls.pause(Pause(scope=scope, operator=operator, reason=reason), event=event)
    if already is not None:
        _say(f"{scope} is already paused {already.by()}")
        return EXIT_OK
    keys = pairs_of(settings, scope)
    _say(f"paused {scope} by {operator}: {reason}")
    _say(f"{len(keys)} configured pair(s) paused: {', '.join(map(str, keys)) or 'none yet'}")
    return EXIT_OK


def cmd_resume(args: argparse.Namespace) -> int:
    """``rotator resume``: lifts the pause of exactly this scope; says what still holds a pair."""
    settings = _load(args)
    scope = scope_of(settings, args)
    operator = operator_of(args)
    with _app(settings) as app:
        app.require_schema()
        event = _event(
            app,
            EventType.RESUMED,
            key=RotationKey(scope.target, scope.secret),
            registries=_registries(settings, scope),
            operator=operator,
            reason=(args.reason or "").strip() or None,
            message=f"resumed {scope}",
        )
        lifted = app.controls.resume(scope, event=event)
        holds = app.controls.everything()
    if lifted is None:
        _say(f"{scope} is not paused (nothing to resume)")
    else:
        _say(f"resumed {scope} (was {lifted.describe()})")
    for key in pairs_of(settings, scope):
        still = holds.pause_of(key)
        if still is not None:
            _say(f"note: {key} is still {still.describe()}")
    return EXIT_OK


def _registries(settings: Settings, scope: Scope) -> tuple[str, ...]:
    if scope.secret == ANY:
        return ()
    return tuple(settings.secret(scope.secret).registries)


def refuse_paused(app: App, request: SweepRequest) -> None:
    """``once --force`` on a paused pair: a ConfigError (exit 2) unless ``--ignore-pause``."""
    keys = [
        RotationKey(target, secret.name)
        for secret in request.secrets
        for target in secret.targets
        if request.targets is None or target in request.targets
    ]
    holds = app.controls.holds(keys)
    paused = [(key, pause) for key in keys if (pause := holds.pause_of(key)) is not None]
    if paused:
        key, pause = paused[0]
        more = f" (and {len(paused) - 1} more)" if len(paused) > 1 else ""
        raise _bad("--force", f"{key}{more} is {pause.describe()}; resume it, or add --ignore-pause")


# --- rollback and unpin --------------------------------------------------------------------


def cmd_rollback(args: argparse.Namespace) -> int:
    """``rotator rollback``: read version N, pin the pair(s) to it, write it with trigger ``rollback``."""
    settings = _load(args)
    secret, keys = _pair_keys(settings, args)
    version, operator, reason = args.to_version, operator_of(args), args.reason.strip()
    if not reason:
        raise _bad("--reason", "say why (it is audited)")
    if secret.source.kind != "kv2":
        raise _bad(
            "--to-version", f"secret {secret.name!r} reads a {secret.source.kind} source; only KV v2 has versions"
        )
    from service.engine.rotator import pinned
    from service.rotation import SweepRequest

    with _app(settings) as app:
        app.require_schema()
        spec = settings.spec_of(secret)
        at_version = pinned(spec, Pin(key=keys[0], version=version, operator=operator, reason=reason))
        credential = _read_version(app, at_version, version)
        for key in keys:
            pin = Pin(key=key, version=version, operator=operator, reason=reason)
            app.controls.pin(
                pin,
                event=_event(
                    app,
                    EventType.PINNED,
                    key=key,
                    api_host=app.store(key.target).api_host,
                    registries=tuple(secret.registries),
                    trigger=Trigger.ROLLBACK,
                    operator=operator,
                    reason=reason,
                    source_mount=credential.source.mount,
                    source_path=credential.source.path,
                    source_version=version,
                    vault_request_id=credential.source.request_id,
                    registry_username=credential.username,
                    message=f"pinned to KV v2 version {version}",
                ),
            )
        request = SweepRequest(
            secrets=[settings.spec_of(secret)],
            targets=frozenset(key.target for key in keys),
            trigger=Trigger.ROLLBACK,
            operator=operator,
            reason=reason,
            # written even when a worker's tick saw the pin first and wrote it: the operator's
            # rollback is its own audited write (an idempotent PATCH of the same value)
            force=True,
        )
        report = app.rotator.sweep(request)
        _unpin_failed(app, report, operator=operator)
    return _print_report(report)


def _read_version(app: App, secret: SecretSpec, version: int) -> RegistryCredential:
    """Version ``version`` of the secret's source, or a ConfigError (exit 2) saying why Vault can't give it."""
    from service.errors import DependencyUnavailable

    try:
        return app.vault_source.read(secret.source)
    except DependencyUnavailable:
        raise
    except SourceError as e:
        raise _bad("--to-version", f"cannot roll {secret.name} back to version {version}: {e}") from None


def _unpin_failed(app: App, report: SweepReport, *, operator: str) -> None:
    """A rollback that did not land leaves no pin behind: the pair stays where it was."""
    for result in report.failed:
        app.controls.unpin(
            result.key,
            event=_event(
                app,
                EventType.UNPINNED,
                key=result.key,
                trigger=Trigger.ROLLBACK,
                operator=operator,
                reason="the rollback did not complete",
                message=f"pin removed: the rollback came to {result.outcome}",
            ),
        )


def cmd_unpin(args: argparse.Namespace) -> int:
    """``rotator unpin``: remove the pin (audited) and rotate the pair back to the current version now."""
    settings = _load(args)
    secret, keys = _pair_keys(settings, args)
    operator, reason = operator_of(args), (args.reason or "").strip() or None
    from service.rotation import SweepRequest

    with _app(settings) as app:
        app.require_schema()
        unpinned = []
        for key in keys:
            event = _event(
                app,
                EventType.UNPINNED,
                key=key,
                registries=tuple(secret.registries),
                operator=operator,
                reason=reason,
                message="returned to the current version",
            )
            removed = app.controls.unpin(key, event=event)
            if removed is None:
                _say(f"{key} is not pinned")
            else:
                _say(f"unpinned {key} (was {removed.describe()})")
                unpinned.append(key)
        if not unpinned:
            return EXIT_OK
        request = SweepRequest(
            secrets=[settings.spec_of(secret)],
            targets=frozenset(key.target for key in unpinned),
            trigger=Trigger.MANUAL,
            operator=operator,
            reason=reason,
        )
        report = app.rotator.sweep(request)
    return _print_report(report)


def _print_report(report: SweepReport) -> int:
    from service.report import render_results

    _say(render_results(report, as_json=False))
    return EXIT_FAILED if report.failed else EXIT_OK


# --- plan ---------------------------------------------------------------------------------


def cmd_plan(args: argparse.Namespace) -> int:
    """``rotator plan``: a dry-run sweep, then AI Core asked read-only; a verdict per pair; nothing written."""
    from service import plan
    from service.cli import _check_selection, _chosen
    from service.rotation import SweepRequest

    settings = _load(args)
    _check_selection(settings, args.secret, args.target)
    specs = _chosen(settings.specs(), args.secret, args.target)
    targets = frozenset(args.target) if args.target else None
    keys = {
        RotationKey(target, secret.name): secret
        for secret in specs
        for target in secret.targets
        if targets is None or target in targets
    }
    with _app(settings) as app:
        app.require_schema()
        report = app.rotator.sweep(SweepRequest(secrets=specs, trigger=Trigger.MANUAL, dry_run=True, targets=targets))
        answers = plan.ask_targets(sorted({key.target for key in keys}), quota=lambda t: _quota(app, t))
        exists = plan.ask_exists(keys, answers=answers, get=lambda key: app.store(key.target).get(key.secret))
    verdicts = [
        plan.verdict(result, secret=keys[result.key], target=answers[result.key.target], exists=exists.get(result.key))
        for result in report.results
    ]
    for verdict in verdicts:
        _say(verdict.line())
    for target, answer in answers.items():
        _say(plan.quota_line(target, answer))
    counts: dict[str, int] = {}
    for verdict in verdicts:
        counts[verdict.action] = counts.get(verdict.action, 0) + 1
    summary = ", ".join(f"{n} {action}" for action, n in sorted(counts.items())) or "nothing to do"
    _say(f"plan: {summary}; nothing was written")
    return EXIT_FAILED if any(verdict.failed for verdict in verdicts) else EXIT_OK


def _quota(app: App, target: str) -> tuple[int | None, int]:
    quota = app.store(target).quota()  # a token first, then one read of the usage and limit
    return quota.count, quota.max_count


HANDLERS: dict[str, Handler] = {
    "plan": cmd_plan,
    "pause": cmd_pause,
    "resume": cmd_resume,
    "rollback": cmd_rollback,
    "unpin": cmd_unpin,
}
