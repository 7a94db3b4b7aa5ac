"""The ``rotator`` command line: parses, loads config, runs a command, maps errors to exit codes.

Exit codes: 0 fine, 1 a rotation (or an audit verification) failed, 2 bad usage or
configuration, 3 a dependency is unreachable. Only the standard library is imported at
module level so that ``rotator --help`` answers at once; commands import what they need.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TextIO

from service import __version__, commands_vault

if TYPE_CHECKING:
    from service.config import Settings
    from service.model import SecretSpec

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3

Handler = Callable[[argparse.Namespace], int]


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its choices and its default (when it has a real one)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.choices and not isinstance(action, argparse._SubParsersAction) and "choices:" not in text:
            text += f" (choices: {', '.join(str(choice) for choice in action.choices)})"
        default = action.default
        meaningful = default is not argparse.SUPPRESS and default is not None and not isinstance(default, bool)
        if action.option_strings and meaningful and default != [] and "default" not in text:
            text += " (default: %(default)s)"
        return text


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return {
        name: sub
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for name, sub in action.choices.items()
    }


def _describe(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Every subcommand shows defaults and choices; one without a description gets its help as one."""
    parser.formatter_class = HelpFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                sub.description = sub.description or helps.get(name)
                _describe(sub)
    return parser


# Commands that read no configuration: they refuse --config instead of ignoring it.
NO_CONFIG = frozenset({"demo", "db grants", "emulator aicore"})


def _logging() -> argparse.ArgumentParser:
    logging = argparse.ArgumentParser(add_help=False)
    logging.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        default=argparse.SUPPRESS,
        help="log level (default: [log] level of the config or ROTATOR_LOG__LEVEL, else info)",
    )
    logging.add_argument(
        "--log-format",
        choices=["auto", "json", "console"],
        default=argparse.SUPPRESS,
        help="log format; auto is console on a terminal, JSON otherwise "
        "(default: [log] format of the config or ROTATOR_LOG__FORMAT, else auto)",
    )
    return logging


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False, parents=[_logging()])
    common.add_argument(
        "--config",
        "-c",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="TOML configuration file (default: $ROTATOR_CONFIG, else built-in defaults)",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    logging = _logging()
    parser = argparse.ArgumentParser(
        prog="rotator",
        description="Rotate SAP AI Core Docker registry secrets from Vault / OpenBao, "
        "with a tamper-evident audit trail in PostgreSQL.",
        parents=[common],
        epilog="Exit codes: 0 ok, 1 a rotation failed, 2 bad usage or config, 3 a dependency is unreachable.",
    )
    parser.add_argument("--version", action="version", version=f"rotator {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    from service import commands_operator

    commands.add_parser(
        "run",
        parents=[common],
        help="run the worker: rotate every secret on its schedule",
        description="Run the worker: schedule every secret, rotate each (target, secret) when due, serve "
        "/livez, /readyz, /metrics and /status on http.listen. SIGTERM or SIGINT stops it cleanly.",
    )

    once = commands.add_parser(
        "once",
        parents=[common],
        help="run one sweep now; exit 1 if any rotation failed",
        description="Run one sweep now, print one line per rotation and a summary; exit 1 if any rotation "
        "failed (so a CronJob can use it).",
    )
    once.add_argument(
        "--secret", action="append", default=[], metavar="NAME", help="only this secret (repeatable; default: all)"
    )
    once.add_argument(
        "--target", action="append", default=[], metavar="NAME", help="only this target (repeatable; default: all)"
    )
    once.add_argument("--dry-run", action="store_true", help="read, render and compare; write nothing to AI Core")
    once.add_argument("--force", action="store_true", help="write even when the credential is unchanged (audited)")
    once.add_argument("--json", action="store_true", help="one JSON object per rotation instead of a line")
    commands_operator.add_once_options(once)
    commands_operator.add_parsers(commands, common)

    check = commands.add_parser(
        "check",
        parents=[common],
        help="validate the config and reach Vault, AI Core, database",
        description="Validate the configuration (files, variables, service keys it references), print a "
        "summary with each secret's next run, then reach Vault, the database and every target.",
    )
    check.add_argument("--offline", action="store_true", help="validate the config only; touch no network")
    check.add_argument(
        "--structure-only",
        action="store_true",
        help="validate the structure only: no network, referenced files and variables need not exist "
        "(a CI lint where secrets are not mounted)",
    )

    status = commands.add_parser(
        "status",
        parents=[common],
        help="state of each (target, secret)",
        description="The state of each configured (target, secret): last outcome and success, failures in "
        "a row, next run, fingerprint, verification.",
    )
    status.add_argument("--json", action="store_true", help="JSON rows instead of a table")
    status.add_argument(
        "--target", action="append", default=[], metavar="NAME", help="only this target (repeatable; default: all)"
    )
    status.add_argument(
        "--secret", action="append", default=[], metavar="NAME", help="only this secret (repeatable; default: all)"
    )
    status.add_argument("--stale", action="store_true", help="only pairs not confirmed within their schedule")

    _add_audit(commands, common)
    commands_vault.add_parsers(commands, common)

    db = commands.add_parser(
        "db", parents=[common], help="database schema and grants", description="The database schema and its grants."
    ).add_subparsers(dest="db_command", metavar="SUBCOMMAND", required=True)
    db.add_parser("upgrade", parents=[common], help="apply migrations up to head")
    db.add_parser("current", parents=[common], help="show the schema revision and whether it is at head")
    grants = db.add_parser(
        "grants",
        parents=[logging],
        help="print SQL granting least privilege to app and reader roles",
        description="Print the SQL that grants least privilege to the application role (append to the "
        "audit trail, never change it; no DDL) and the reader role (SELECT only). Run it as the owner "
        "after `rotator db upgrade`. Reads no configuration.",
    )
    grants.add_argument("--app-role", default="rotator_app", metavar="ROLE", help="the role the rotator connects as")
    grants.add_argument("--reader-role", default="rotator_reader", metavar="ROLE", help="the read-only role")

    demo = commands.add_parser(
        "demo",
        parents=[logging],
        help="run everything locally: OpenBao, PostgreSQL, AI Core emulator",
        description="Run the real worker against local stand-ins (embedded PostgreSQL, an OpenBao dev "
        "server, the AI Core emulator, a registry emulator) and narrate what happens. Reads no configuration.",
    )
    demo.add_argument("--short", action="store_true", help="a quick run (used by the tests)")
    demo.add_argument(
        "--seconds", type=float, default=None, help="how long each step waits (default: 20, with --short 6)"
    )
    demo.add_argument(
        "--keep",
        action="store_true",
        help="afterwards keep everything running and print the environment to try every command; Ctrl-C stops it",
    )

    emulator = commands.add_parser(
        "emulator", parents=[common], help="local emulators", description="Local emulators, as processes."
    ).add_subparsers(dest="emulator", metavar="NAME", required=True)
    aicore = emulator.add_parser(
        "aicore",
        parents=[logging],
        help="the AI Core emulator as a process",
        description="Serve the AI Core emulator (XSUAA tokens and the Docker registry secret API) until "
        "stopped. Reads no configuration.",
    )
    aicore.add_argument("--host", default="127.0.0.1", help="address to listen on")
    aicore.add_argument("--port", type=int, default=8900, help="port to listen on")
    aicore.add_argument("--tenants", metavar="FILE", help="JSON file of tenants (default: two demo tenants)")
    aicore.add_argument("--latency-ms", type=float, default=0.0, metavar="MS", help="delay added to every response")
    aicore.add_argument(
        "--service-key-dir", metavar="DIR", help="write one service key JSON per tenant here (default: none written)"
    )
    _add_emulator_knobs(aicore)
    return _describe(parser)


def _add_emulator_knobs(aicore: argparse.ArgumentParser) -> None:
    """Fault knobs of ``emulator aicore`` (also settable at run time through its /_emulator/ admin door)."""
    knobs = aicore.add_argument_group("fault knobs", "also settable while it runs, below /_emulator/ (loopback only)")
    knobs.add_argument(
        "--token-ttl", type=int, default=3600, metavar="SECONDS", help="expires_in of XSUAA tokens (default: 3600)"
    )
    knobs.add_argument(
        "--fail-status", type=int, metavar="STATUS", help="answer API requests with this 4xx/5xx (default: none)"
    )
    knobs.add_argument(
        "--fail-burst", type=int, default=1, metavar="B", help="so many failed requests in a row (default: 1)"
    )
    knobs.add_argument("--fail-every", type=int, default=1, metavar="N", help="then let N pass (default: 1)")
    knobs.add_argument("--retry-after", metavar="SECONDS", help="Retry-After of the failed answers (default: none)")
    knobs.add_argument(
        "--stall-seconds", type=float, metavar="S", help="hold requests S seconds, then apply them (default: none)"
    )
    knobs.add_argument("--stall-every", type=int, default=1, metavar="N", help="hold every N-th one (default: 1)")
    knobs.add_argument("--stall-method", default="PATCH", help="hold this method's, or 'any' (default: PATCH)")
    knobs.add_argument(
        "--request-log", metavar="FILE", help="append each answered request as a JSON line (default: none)"
    )


def _add_audit(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    audit = commands.add_parser(
        "audit",
        parents=[common],
        help="read and verify the audit trail",
        description="Read and verify the audit trail.",
    ).add_subparsers(dest="audit_command", metavar="SUBCOMMAND", required=True)
    listing = audit.add_parser("list", parents=[common], help="events, newest first")
    _add_audit_filters(listing)
    listing.add_argument(
        "--operator", action="append", default=[], help="filter by operator (repeatable; default: no filter)"
    )
    listing.add_argument("--limit", type=int, default=50, help="at most this many events (default 50)")
    listing.add_argument(
        "--format", choices=["table", "jsonl", "csv"], default="table", help="output format (default table)"
    )
    listing.add_argument(
        "--columns", metavar="A,B,...", help="only these columns, in this order, e.g. seq,event (default: all)"
    )
    show = audit.add_parser("show", parents=[common], help="one event by sequence number, or every event of a run id")
    show.add_argument("id", metavar="SEQ_OR_RUN_ID", help="a sequence number or a run id")
    show.add_argument("--format", choices=["text", "json"], default="text", help="output format (default text)")
    show.add_argument("--columns", metavar="A,B,...", help="only these columns, in this order (default: all)")
    export = audit.add_parser("export", parents=[common], help="stream matching events oldest first (a SIEM feed)")
    _add_audit_filters(export)
    export.add_argument("--format", choices=["jsonl", "csv"], default="jsonl", help="output format (default jsonl)")
    export.add_argument("--output", "-o", metavar="FILE", help="write here (default: standard output)")
    export.add_argument(
        "--after-seq", type=int, metavar="N", help="only rows after seq N, to resume a feed (default: from the first)"
    )
    export.add_argument("--follow", action="store_true", help="keep polling for new rows until SIGTERM / SIGINT")
    export.add_argument(
        "--poll", type=float, default=2.0, metavar="SECONDS", help="--follow's polling interval (default 2.0)"
    )
    verify = audit.add_parser("verify", parents=[common], help="recompute the hash chain; exit 1 on any break")
    verify.add_argument("--anchor", metavar="SEQ:HASH", help="a chain head logged earlier (default: none)")
    verify.add_argument("--json", action="store_true", help="the result as one JSON object")
    verify.add_argument(
        "--anchors",
        metavar="FILE|vault:[MOUNT/PATH]",
        help="check every signed anchor kept there, and that the chain holds each (default: none)",
    )

    report = audit.add_parser("report", parents=[common], help="a compliance report of a time window (HTML or JSON)")
    report.add_argument("--since", metavar="TIME", default="30d", help="ISO 8601 time or a duration ago (default 30d)")
    report.add_argument("--until", metavar="TIME", help="end of the window (default now)")
    report.add_argument(
        "--target", action="append", default=[], metavar="NAME", help="only this target (repeatable; default: all)"
    )
    report.add_argument("--format", choices=["html", "json"], default="html", help="report format (default html)")
    report.add_argument(
        "--output", "-o", metavar="FILE", required=True, help="write the report here (required; no default)"
    )
    report.add_argument(
        "--anchors", metavar="FILE|vault:[MOUNT/PATH]", help="check these signed anchors too (default: none)"
    )
    report.add_argument("--no-verify", action="store_true", help="skip walking the hash chain (say so in the report)")


def _add_audit_filters(parser: argparse.ArgumentParser) -> None:
    for flag in ("--secret", "--target", "--event", "--actor", "--run"):
        parser.add_argument(
            flag, action="append", default=[], help=f"filter by {flag[2:]} (repeatable; default: no filter)"
        )
    parser.add_argument(
        "--since", metavar="TIME", help="ISO 8601 time or a duration ago, e.g. 24h (default: the first event)"
    )
    parser.add_argument("--until", metavar="TIME", help="ISO 8601 time or a duration ago (default: now)")


# --- commands ----------------------------------------------------------------------


def load(args: argparse.Namespace, *, warn: bool = True) -> Settings:
    """Load the settings, then log as they say unless a flag overrides (flags > env > file > defaults)."""
    from service import logs
    from service.config import config_path, load_settings, unknown_env_issues

    settings = load_settings(config_path(getattr(args, "config", None)))
    logs.configure(
        logs.effective(getattr(args, "log_level", None), configured=settings.log.level),
        logs.effective(getattr(args, "log_format", None), configured=settings.log.format),
    )
    for issue in unknown_env_issues(settings) if warn else []:
        logs.get_logger("rotator").warning("config.unknown_variable", variable=issue.location, problem=issue.problem)
    return settings


def cmd_check(args: argparse.Namespace) -> int:
    from service import checks
    from service.config import ENV_PREFIX

    settings = load(args, warn=False)
    issues = checks.local_issues(settings, structure_only=args.structure_only)
    for issue in issues:
        where = "environment" if issue.location.startswith(ENV_PREFIX) else _source(args)
        print(f"{issue.severity}: {issue.render(where)}", file=sys.stderr)
    if any(issue.severity == "error" for issue in issues):
        return EXIT_USAGE
    print(checks.summary(settings))
    from service.windows import summary_lines

    per_secret = {f"secret {secret.name}": secret.windows for secret in settings.secrets if secret.windows}
    for line in summary_lines(settings.windows, per_secret, datetime.now(UTC)):
        print(line)
    if args.offline or args.structure_only:
        return EXIT_OK
    return checks.reachability(settings)


def _source(args: argparse.Namespace) -> str:
    from service.config import config_path

    return str(config_path(getattr(args, "config", None)) or "(built-in defaults)")


def cmd_run(args: argparse.Namespace) -> int:
    from service.app import App
    from service.config import config_path
    from service.worker import Worker

    with App(load(args)) as app:
        app.warn_insecure_transport()
        return Worker(app, config_path=config_path(getattr(args, "config", None))).run()


def cmd_once(args: argparse.Namespace) -> int:
    from service.app import App
    from service.model import Trigger, spec_pairs
    from service.rotation import SweepRequest

    settings = load(args)
    _check_selection(settings, args.secret, args.target)
    specs = settings.specs()  # once: the sweep and the recovery share them
    from service.commands_operator import operator_of, refuse_paused

    request = SweepRequest(
        secrets=_chosen(specs, args.secret, args.target),
        trigger=Trigger.MANUAL,
        force=args.force,
        dry_run=args.dry_run,
        targets=frozenset(args.target) if args.target else None,
        operator=operator_of(args),
        reason=args.reason,
        ignore_pause=args.ignore_pause,
    )
    with App(settings) as app:
        app.warn_insecure_transport()
        app.require_schema()
        if args.force and not args.ignore_pause:
            refuse_paused(app, request)
        if not args.dry_run:
            app.rotator.recover(spec_pairs(specs))
        from service import collector

        collector.settle()  # start-up is done: the configuration and the app live until exit
        report = app.rotator.sweep(request)
    from service.report import render_results

    print(render_results(report, as_json=args.json))
    return EXIT_FAILED if report.failed else EXIT_OK


def _check_selection(settings: Settings, secrets: list[str], targets: list[str]) -> None:
    """``--secret`` and ``--target`` name what the configuration has (else exit 2, naming them)."""
    from service.errors import ConfigError, ConfigIssue

    known = {secret.name for secret in settings.secrets}
    issues = [
        ConfigIssue("--secret", f"no secret named {name!r} in the configuration")
        for name in secrets
        if name not in known
    ]
    issues += [
        ConfigIssue("--target", f"no target named {name!r} in the configuration")
        for name in targets
        if name not in settings.targets
    ]
    if issues:
        raise ConfigError("command line", issues)


def _chosen(specs: list[SecretSpec], secrets: list[str], targets: list[str]) -> list[SecretSpec]:
    """The entries ``--secret`` and ``--target`` choose (all without them)."""
    return [
        spec
        for spec in specs
        if (not secrets or spec.name in secrets) and (not targets or set(targets) & set(spec.targets))
    ]


def cmd_status(args: argparse.Namespace) -> int:
    import json

    from service.app import App
    from service.status import filter_rows, render_table, status_rows, summary

    settings = load(args)
    _require_secrets(settings, args)
    _check_selection(settings, args.secret, args.target)  # unknown names: exit 2, naming them
    with App(settings) as app:
        app.require_schema()
        rows = status_rows(
            settings.specs(),
            app.state_reader.load(),
            now=app.clock(),
            allowance=app.stale_allowance,
            holds=app.controls.everything(),
        )
    rows = filter_rows(rows, targets=args.target, secrets=args.secret, stale=args.stale)
    counts = summary(rows)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(render_table(rows))
        print(", ".join(f"{value} {name}" for name, value in counts.items()))
    return EXIT_OK


def cmd_audit(args: argparse.Namespace) -> int:
    from service import commands_audit
    from service.app import App
    from service.audit import commands

    with App(load(args)) as app:
        out = sys.stdout
        if args.audit_command == "list":
            filters = commands_audit.filters(args)
            return commands.audit_list(
                app.engine,
                **filters,
                operators=args.operator,
                limit=args.limit,
                fmt=args.format,
                columns=args.columns,
                out=out,
            )
        if args.audit_command == "show":
            return commands.audit_show(app.engine, ident=args.id, fmt=args.format, columns=args.columns, out=out)
        if args.audit_command == "export":
            return commands_audit.export(app, args, out=out)
        if args.audit_command == "report":
            return commands_audit.report(app, args, out=out)
        return commands_audit.verify(app, args, out=out)


def _require_secrets(settings: Settings, args: argparse.Namespace) -> None:
    from service.errors import ConfigError, ConfigIssue

    if not settings.secrets:
        problem = "no secrets configured: add a [[secrets]] entry (status shows each target and secret)"
        raise ConfigError(_source(args), [ConfigIssue("secrets", problem)])


def _open_output(name: str, *, mode: Literal["w", "a"] = "w") -> TextIO:
    """The ``--output`` file, opened for writing; a missing folder or a refusal is a usage error."""
    from service.errors import ConfigError, ConfigIssue

    path = Path(name)
    if not path.parent.is_dir():
        raise ConfigError("command line", [ConfigIssue("--output", f"folder {path.parent} does not exist")])
    try:
        return path.open(mode, encoding="utf-8", newline="")
    except OSError as e:
        raise ConfigError("command line", [ConfigIssue("--output", f"cannot write {path}: {e.strerror}")]) from None


def cmd_db(args: argparse.Namespace) -> int:
    from service.audit import commands

    if args.db_command == "grants":
        return commands.db_grants(app_role=args.app_role, reader_role=args.reader_role, out=sys.stdout)
    from service.app import App

    with App(load(args)) as app:
        if args.db_command == "upgrade":
            return commands.db_upgrade(app.engine, out=sys.stdout)
        return commands.db_current(app.engine, out=sys.stdout)


def cmd_demo(args: argparse.Namespace) -> int:
    from service.sandbox.demo import run_demo

    return run_demo(short=args.short, seconds=args.seconds, keep=args.keep)


def cmd_emulator_aicore(args: argparse.Namespace) -> int:
    from service.sandbox.aicore_emulator import serve
    from service.sandbox.aicore_emulator.process import knobs_from

    knobs = knobs_from(
        latency_ms=args.latency_ms,
        token_ttl=args.token_ttl,
        fail=(args.fail_status, args.fail_every, args.fail_burst, args.retry_after),
        stall=(args.stall_seconds, args.stall_every, args.stall_method),
        request_log=args.request_log,
    )
    return serve(
        host=args.host,
        port=args.port,
        tenants_file=args.tenants,
        service_key_dir=args.service_key_dir,
        knobs=knobs,
    )


def handlers() -> dict[str, Handler]:
    from service import commands_operator

    audit = {f"audit {name}": cmd_audit for name in ("list", "show", "export", "verify", "report")}
    db = {f"db {name}": cmd_db for name in ("upgrade", "current", "grants")}
    return {
        "run": cmd_run,
        "once": cmd_once,
        "check": cmd_check,
        "status": cmd_status,
        "demo": cmd_demo,
        "emulator aicore": cmd_emulator_aicore,
        **audit,
        **db,
        **commands_operator.HANDLERS,
        **commands_vault.HANDLERS,
    }


def _handler_key(args: argparse.Namespace) -> str:
    for sub in ("audit_command", "db_command", "emulator", "vault_command"):
        if getattr(args, sub, None):
            return f"{args.command} {getattr(args, sub)}"
    return str(args.command)


def main(argv: Sequence[str] | None = None) -> int:
    from service import collector
    from service.hardening import disable_core_dumps

    disable_core_dumps()  # before any credential is read: a crash must not write them to disk
    collector.tune()
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    key = _handler_key(args)
    if unknown:  # the command's own usage, not the top level's
        _parser_of(parser, key).error(f"unrecognized arguments: {' '.join(unknown)}")
    handler = handlers().get(key)
    if handler is None:
        parser.error(f"'{key}' is not available in this build")
    if key in NO_CONFIG and getattr(args, "config", None) is not None:
        _parser_of(parser, key).error(f"--config: `rotator {key}` reads no configuration")
    from service import logs

    logs.configure(getattr(args, "log_level", "info"), getattr(args, "log_format", "auto"))
    return run_handler(handler, args)


def _parser_of(parser: argparse.ArgumentParser, key: str) -> argparse.ArgumentParser:
    for name in key.split():
        parser = _subcommands(parser)[name]
    return parser


def run_handler(handler: Handler, args: argparse.Namespace) -> int:  # noqa: PLR0911 (one return per exit code)
    from service.errors import AuditMisconfigured, ConfigError, DependencyUnavailable, RotatorError, SchemaNotCurrent

    try:
        return handler(args)
    except (SchemaNotCurrent, AuditMisconfigured) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as e:
        for line in str(e).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return EXIT_USAGE
    except DependencyUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except RotatorError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # noqa: BLE001 (a bug: one line and a log record; the traceback only at debug level)
        return _internal_error(args, e)


def _internal_error(args: argparse.Namespace, error: Exception) -> int:
    import logging

    from service import logs

    debug = logging.getLogger().isEnabledFor(logging.DEBUG)
    command = _handler_key(args) if hasattr(args, "command") else "rotator"
    logs.get_logger("rotator.cli").error(
        "cli.internal_error", command=command, error=type(error).__name__, exc_info=debug
    )
    hint = "" if debug else "; run with --log-level debug for the traceback"
    print(f"error: internal error in '{command}': {type(error).__name__}{hint}", file=sys.stderr)
    return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
