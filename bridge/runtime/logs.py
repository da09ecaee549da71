"""Logging set-up for the CLI: a plain human format by default, JSON lines with --log-format json.

Defence in depth: a filter drops any known secret (WinCC password, tokens registered at run time) from the
formatted message, the traceback and the stack before a record is written, so a secret that slipped into an
exception text still never reaches a log file.

A client's mistake is not a server error: asyncua logs every ServiceFault it sends (a refused login, an untrusted
certificate, an unknown session) at ERROR from `asyncua.server.uaprocessor`, after the bridge has already logged
the refusal once, at WARNING, with the reason. `ClientFaultFilter` drops those duplicates (kept at DEBUG with
--log-level debug); faults that mean the server itself failed (BadInternalError and kin) stay at ERROR. A refusal
only asyncua sees (an identity token type the endpoint does not offer, e.g. anonymous with `opcua.anonymous: none`)
keeps asyncua's line, at WARNING. It also drops asyncua's traceback for a listening port that is taken: the bridge
says that in one line naming the setting.
"""

from __future__ import annotations

import errno
import json
import logging
import sys
from datetime import UTC, datetime

__all__ = ["ClientFaultFilter", "JsonFormatter", "RedactingFilter", "configure_logging", "set_log_level"]

MASK = "***"


class RedactingFilter(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._longest_first: list[str] = []
        # formats tracebacks exactly as logging.Formatter does, so the redacted text can stand in for the original
        self._traceback = logging.Formatter()

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= 4 and secret not in self._secrets:
            self._secrets.add(secret)
            # a secret that contains another must be masked first, or a piece of it would survive
            self._longest_first = sorted(self._secrets, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._longest_first:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._longest_first:
            return True
        try:
            message = record.getMessage()
        except Exception:  # bad %-args: let the handler report it as logging always does
            return True
        clean = self.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            # formatters reuse exc_text when it is set, so the traceback is written only in its redacted form
            record.exc_text = self._traceback.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, and exception/stack when present."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)


# ServiceFaults that are the server's own failure, not a client's mistake: these stay at ERROR
SERVER_FAULTS = frozenset(
    {
        "BadInternalError",
        "BadOutOfMemory",
        "BadUnexpectedError",
        "BadResourceUnavailable",
        "BadServerHalted",
        "BadShutdown",
    }
)
_FAULT_LOGGER = "asyncua.server.uaprocessor"
_FAULT_MESSAGE = "sending service fault response: %s (%s)"
_START_LOGGER = "asyncua.server.server"
_SESSION_LOGGER = "asyncua.server.internal_session"
_TOKEN_REFUSED = "Rejected active session UserIdentityToken not supported"


class ClientFaultFilter(logging.Filter):
    """On asyncua's uaprocessor and server loggers: drop the ERROR duplicate of a refusal the bridge has logged
    (or, with `keep_as_debug`, pass it on at DEBUG), and the start-up traceback of a taken port."""

    def __init__(self, keep_as_debug: bool | None = None) -> None:
        """`keep_as_debug` None: keep them (at DEBUG) whenever the root logger is at DEBUG."""
        super().__init__()
        self._keep_as_debug = keep_as_debug

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == _FAULT_LOGGER and record.msg == _FAULT_MESSAGE:
            args = record.args if isinstance(record.args, tuple) else ()
            if len(args) == 2 and str(args[1]) in SERVER_FAULTS:
                return True
        elif record.name == _START_LOGGER and record.exc_info:
            exc = record.exc_info[1]
            if not (isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE):
                return True
        elif record.name == _SESSION_LOGGER and record.msg == _TOKEN_REFUSED:
            # the only line about this refusal: keep it, as what it is (a client's mistake)
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            return True
        else:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        if self._keep_as_debug is None:
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return self._keep_as_debug


def configure_logging(level: str = "info", fmt: str = "human") -> RedactingFilter:
    """Configure the root logger once; return the redacting filter so secrets can be registered with it."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    redact = RedactingFilter()
    handler.addFilter(redact)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    set_log_level(level)
    faults = ClientFaultFilter()  # at DEBUG (also after a reload to log.level debug) the dropped lines show
    for name in (_FAULT_LOGGER, _START_LOGGER, _SESSION_LOGGER):
        target = logging.getLogger(name)
        target.filters = [f for f in target.filters if not isinstance(f, ClientFaultFilter)]
        target.addFilter(faults)
    return redact


def set_log_level(level: str) -> None:
    """The root level; also what a reload (SIGHUP) applies from `log.level`."""
    logging.getLogger().setLevel(level.upper())
    # asyncua logs every request at INFO; keep its noise at WARNING unless debugging the bridge itself
    for noisy in ("asyncua", "uvicorn", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.NOTSET if level.lower() == "debug" else logging.WARNING)
