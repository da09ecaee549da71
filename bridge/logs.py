"""Logging set-up for the CLI: a plain human format by default, JSON lines with --log-format json.

Defence in depth: a filter drops any known secret (WinCC password, tokens registered at run time) from the
formatted message before it is written, so a secret that slipped into an exception text still never reaches
a log file.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

__all__ = ["RedactingFilter", "configure_logging"]


class RedactingFilter(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= 4:
            self._secrets.add(secret)

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            message = record.getMessage()
            if any(s in message for s in self._secrets):
                for s in self._secrets:
                    message = message.replace(s, "***")
                record.msg, record.args = message, None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
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
    root.setLevel(level.upper())
    # asyncua logs every request at INFO; keep its noise at WARNING unless debugging the bridge itself
    if level.lower() != "debug":
        for noisy in ("asyncua", "uvicorn", "httpx", "httpcore"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    return redact
