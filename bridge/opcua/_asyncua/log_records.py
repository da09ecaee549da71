"""Touchpoint 12: log records of asyncua the bridge rewrites (the code is in bridge/runtime/logs.py)."""

from __future__ import annotations

from bridge.opcua._asyncua.touchpoint import Touchpoint

# ---- 12. Log records of asyncua the bridge rewrites ------------------------------------------------------------------
# Why: asyncua logs a client's refusal as a server ERROR ("sending service fault response" from uaprocessor,
# "Rejected active session UserIdentityToken not supported" from internal_session) and a taken port as a traceback
# ("error starting server" from server). bridge/runtime/logs.py (ClientFaultFilter) matches these by logger name and
# message format; it lives there because it is installed before any command imports asyncua. Read against asyncua
# 2.1.0; tests/unit/test_logs.py checks the message formats are still in asyncua's source.


TOUCHPOINTS: list[Touchpoint] = []  # the formats are checked by tests/unit/test_logs.py
