"""Logging set-up for the CLI: a plain human format by default, JSON lines with --log-format json.

Defence in depth: a filter drops any known secret (WinCC password, tokens registered at run time) from the
formatted message, the traceback and the stack before a record is written, so a secret that slipped into an
exception text still never reaches a log file.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

__all__ = ["JsonFormatter", "RedactingFilter", "configure_logging", "set_log_level"]

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
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
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
    return redact


def set_log_level(level: str) -> None:
    """The root level; also what a reload (SIGHUP) applies from `log.level`."""
    logging.getLogger().setLevel(level.upper())
    # asyncua logs every request at INFO; keep its noise at WARNING unless debugging the bridge itself
    for noisy in ("asyncua", "uvicorn", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.NOTSET if level.lower() == "debug" else logging.WARNING)
