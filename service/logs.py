"""structlog setup: JSON lines off a terminal, console output on one, and redaction.

Library loggers (hvac, urllib3, httpx, apscheduler, sqlalchemy, alembic) go through the
same processors. Tracebacks are rendered **without frame locals**: structlog's rich and
dict renderers can dump locals, and hvac's request frame holds ``X-Vault-Token``.
``redact`` is a second line of defence: it masks values by key and by shape.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import threading
import traceback
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

MASK = "[REDACTED]"

SENSITIVE_KEYS = frozenset(
    {
        "password",
        "passwd",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "client_token",
        "clientsecret",
        "client_secret",
        "secret_id",
        "authorization",
        "x-vault-token",
        "jwt",
        "dockerconfigjson",
        ".dockerconfigjson",
        "auth",
        "private_key",
        "key_pem",
        "audit_key",
        "cookie",
        "set-cookie",
        "vault_token",
    }
)

_SHAPES: list[tuple[re.Pattern[str], str]] = [
    # Vault / OpenBao tokens: hvs., hvb., hvr., s., b., r. followed by a long opaque part.
    (re.compile(r"\b(?:hv[sbr]|[sbr])\.[A-Za-z0-9_\-]{20,}"), MASK),
    # JWTs (XSUAA access tokens, Kubernetes service account tokens).
    (re.compile(r"\beyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*"), MASK),
    # Authorization header values.
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{8,}"), r"\1 " + MASK),
    # user:password@ in URLs.
    (re.compile(r"(?<=://)[^\s/@:]+:[^\s/@]+(?=@)"), MASK),
    # .dockerconfigjson content, escaped or not.
    (re.compile(r"\{\\?\"auths\\?\"\s*:.*", re.DOTALL), MASK),
    # password=..., "token": "..." pairs inside text (JSON bodies, reprs, query strings).
    (
        re.compile(r"(?i)([\"']?(?:password|client_?secret|secret_id|token)[\"']?\s*[:=]\s*)[\"']?[^\s\"',}&]+[\"']?"),
        r"\1" + MASK,
    ),
]


# One scan that any shape would match: most values (names, hosts, fingerprints) pass it
# untouched, so the per-shape substitutions run only on the few strings that need them.
_ANY_SHAPE = re.compile(
    "|".join(
        f"(?i:{shape.pattern.removeprefix('(?i)')})" if shape.pattern.startswith("(?i)") else f"(?:{shape.pattern})"
        for shape, _ in _SHAPES
    )
)


def _may_match(text: str) -> list[bool]:
    """For ASCII text, whether each of ``_SHAPES`` could match: a substring every match must contain.

    Most values (names, hosts, fingerprints, times) contain none of them, so they skip the
    regular expressions altogether. Non-ASCII text takes the full scan (case-insensitive
    matching there is wider than ``str.lower``).
    """
    lower = text.lower()
    return [
        "." in text,  # Vault tokens: hvs.XXXX
        "eyJ" in text,  # JWTs
        "bearer" in lower or "basic" in lower,
        "://" in text and "@" in text,  # user:password@ in URLs
        "auths" in text,  # .dockerconfigjson
        "password" in lower or "secret" in lower or "token" in lower,  # password=..., "token": ...
    ]


def redact_text(text: str) -> str:
    """Mask every credential-shaped part of a string."""
    if not text.isascii():
        if not _ANY_SHAPE.search(text):
            return text
        candidates = [True] * len(_SHAPES)
    else:
        candidates = _may_match(text)
        if not any(candidates):
            return text
    for (shape, replacement), candidate in zip(_SHAPES, candidates, strict=True):
        if candidate:  # a substitution inserts only MASK, which none of the later shapes needs
            text = shape.sub(replacement, text)
    return text


_PLAIN = (int, float, bool, type(None))  # nothing to mask inside (checked by exact type: the common case)


def _redact_value(key: str, value: Any) -> Any:
    if key.lower() in SENSITIVE_KEYS and value not in (None, "", False):
        return MASK
    kind = type(value)
    if kind in _PLAIN:
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value("", v) for v in value]
    return value


def redact(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Processor: mask credentials by key name and by shape, in every value."""
    return {key: _redact_value(key, value) for key, value in event_dict.items()}


def format_exception_without_locals(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Processor: render ``exc_info`` as a plain traceback: no locals, no rich."""
    exc_info = event_dict.pop("exc_info", None)
    if exc_info:
        if exc_info is True:
            exc_info = sys.exc_info()
        elif isinstance(exc_info, BaseException):
            exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
        if exc_info[0] is not None:
            event_dict["exception"] = "".join(traceback.format_exception(*exc_info))
    return event_dict


def _shared_processors() -> list[Processor]:
    """What every line gets, ours and the libraries' (stdlib records: the logger name and extras from the record)."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
        format_exception_without_locals,
        redact,
    ]


MAX_PENDING_LINES = 10_000  # lines handed in but not written, before their threads wait for the stream


class LineWriter:
    """The one writer of the log stream: lines from any thread, written by whichever thread finds none writing.

    A thread that hands in a line while another thread is writing leaves it to that thread and
    goes on: the writing thread takes everything pending in one ``write`` and ``flush``, until
    nothing is. With 64 rotation threads, a lock held around each line's write and flush made
    them queue behind one another (a third of (b)'s log-line cost, docs/performance.md);
    now a line costs its caller a list append, and the stream sees one write per batch. Lines
    stay whole and in the order they were handed in. A stream that cannot keep up holds the
    threads back once ``MAX_PENDING_LINES`` are waiting, as the lock did, instead of growing the
    list without end. ``write`` returns once this thread's line
    is written or another thread has taken it; ``wait_written`` waits for the others
    (before ``os._exit``). The lock is reentrant: a signal handler that logs while its thread
    holds it appends, and the interrupted thread writes the line.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._changed = threading.Condition(threading.RLock())
        self._pending: list[str] = []
        self._writer: int | None = None  # the thread writing, if any

    def write(self, text: str) -> int:
        with self._changed:
            if self._writer not in (None, threading.get_ident()):  # a stream slower than the lines: wait, as a lock did
                self._changed.wait_for(lambda: len(self._pending) < MAX_PENDING_LINES or self._writer is None)
            self._pending.append(text)
            if self._writer is not None:
                return len(text)
            self._writer = threading.get_ident()
        self._drain()
        return len(text)

    def flush(self) -> None:
        """Nothing to do: whoever writes a batch flushes it (``logging.StreamHandler.emit`` calls this)."""

    def isatty(self) -> bool:
        return self.stream.isatty()

    def wait_written(self, timeout: float = 2.0) -> bool:
        """Wait until every line handed in is written (False: ``timeout`` passed first); never for this thread."""
        with self._changed:
            if self._writer == threading.get_ident():
                return not self._pending
            return self._changed.wait_for(lambda: self._writer is None, timeout=timeout)

    def _drain(self) -> None:
        try:
            while True:
                with self._changed:
                    batch, self._pending = self._pending, []
                    self._changed.notify_all()  # room for the lines of threads held back by MAX_PENDING_LINES
                    if not batch:  # stop writing in the same hold that saw nothing left: no line is stranded
                        self._writer = None
                        return
                self._write("".join(batch))
        except BaseException:  # KeyboardInterrupt while writing: the next line's thread writes what is left
            with self._changed:
                self._writer = None
                self._changed.notify_all()
            raise

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError) as e:  # closed, full, gone: as the standard library's handlers do,
            with contextlib.suppress(Exception):  # a stream that fails never fails the caller
                sys.__stderr__.write(f"--- logging error: {type(e).__name__} writing a log line ---\n")  # type: ignore[union-attr]


class LineLogger:
    """structlog's wrapped logger for our own events: the rendered line, handed to the stream's ``LineWriter``.

    Our events skip the standard library (a ``LogRecord``, the handler chain and a second
    pass through the formatter cost about 0.4 ms a line with 64 rotation threads); the
    libraries' records still go through the handler, whose stream is the same ``LineWriter``,
    so the two kinds of line stay whole and in order in one stream.
    """

    def __init__(self, name: str, writer: LineWriter) -> None:
        self.name = name  # structlog.stdlib.add_logger_name reads it
        self._writer = writer

    def msg(self, message: str) -> None:
        self._writer.write(message + "\n")

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


class LineLoggerFactory:
    """Makes a ``LineLogger`` per ``get_logger(name)`` over one writer."""

    def __init__(self, writer: LineWriter) -> None:
        self._writer = writer

    def __call__(self, *args: Any) -> LineLogger:
        return LineLogger(str(args[0]) if args else "rotator", self._writer)


def _renderer(fmt: str, stream: TextIO) -> Processor:
    use_console = fmt == "console" or (fmt == "auto" and stream.isatty())
    if use_console:
        return structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
    return structlog.processors.JSONRenderer(sort_keys=False)


_writer: LineWriter | None = None  # the configured stream's writer

QUIET_LIBRARIES = {
    "hvac": logging.WARNING,
    "urllib3": logging.WARNING,
    "requests": logging.WARNING,
    "httpx": logging.WARNING,
    "httpcore": logging.WARNING,
    "apscheduler": logging.WARNING,
    "sqlalchemy": logging.WARNING,
    "alembic": logging.WARNING,
}


def configure(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Route structlog and the standard library through one set of processors."""
    global _writer  # noqa: PLW0603 (the one writer of the configured stream, for wait_written)
    out = stream or sys.stderr
    _writer = LineWriter(out)
    handler = logging.StreamHandler(_writer)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=_shared_processors(),
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, _renderer(fmt, out)],
        )
    )
    # No renderer here shows the caller, process or thread of a record: don't collect them
    # per record (the logging docs' "Optimization" section).
    logging._srcfile = None
    logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name, lib_level in QUIET_LIBRARIES.items():
        logging.getLogger(name).setLevel(max(lib_level, logging.getLevelName(level.upper())))
    structlog.configure(
        processors=[*_shared_processors(), _renderer(fmt, out)],
        logger_factory=LineLoggerFactory(_writer),
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=False,  # a reload may configure again (another level): loggers see it
    )


def wait_written(timeout: float = 2.0) -> bool:
    """Wait until every log line handed in is written (before ``os._exit``, which would drop the rest)."""
    return _writer.wait_written(timeout) if _writer is not None else True


def effective(flag: str | None, *, configured: str) -> str:
    """A command-line flag wins; otherwise the configured value (environment over file over default)."""
    return flag if flag is not None else configured


def get_logger(name: str = "rotator") -> Any:
    return structlog.get_logger(name)


def bind(**values: Any) -> None:
    structlog.contextvars.bind_contextvars(**values)


def unbind(*keys: str) -> None:
    structlog.contextvars.unbind_contextvars(*keys)


def scrub(mapping: MutableMapping[str, Any]) -> dict[str, Any]:
    """Redact a mapping for output outside the logger (e.g. ``rotator status --json``)."""
    return {key: _redact_value(key, value) for key, value in mapping.items()}
