"""HistoryRead continuation points: per session, at most `history.max_continuation_points` (the oldest is dropped),
freed by ReleaseContinuationPoints or when the session closes."""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Any

from bridge.opcua._asyncua import InternalSession

__all__ = ["ContinuationPoints"]


class ContinuationPoints:
    """The cursors (where a read goes on) behind the continuation points handed to each session."""

    def __init__(self, max_points: int) -> None:
        self._max = max_points
        self._cursors: dict[Any, OrderedDict[bytes, Any]] = {}

    def release(self, session: InternalSession) -> None:
        self._cursors.pop(session.session_id, None)

    def store(self, session: InternalSession, cursor: Any) -> bytes:
        points = self._cursors.setdefault(session.session_id, OrderedDict())
        while len(points) >= self._max:
            points.popitem(last=False)
        key = os.urandom(16)
        points[key] = cursor
        return key

    def take(self, session: InternalSession, cp: bytes) -> Any:
        return self._cursors.get(session.session_id, OrderedDict()).pop(bytes(cp), None)
