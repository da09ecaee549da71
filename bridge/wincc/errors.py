"""One exception hierarchy for everything that can go wrong talking to WinCC.

Messages carry the HTTP status and a short reason, never credentials: the transport builds them from the
method, the path (no query string, no userinfo) and the status only.
"""

from __future__ import annotations

__all__ = [
    "WinCCBadAnswer",
    "WinCCError",
    "WinCCForbidden",
    "WinCCNotFound",
    "WinCCRejected",
    "WinCCTimeout",
    "WinCCUnauthorized",
    "WinCCUnreachable",
]


class WinCCError(Exception):
    """Base class. `status` is the HTTP status where there was one."""

    def __init__(self, reason: str, *, status: int | None = None) -> None:
        self.reason = reason
        self.status = status
        super().__init__(f"{reason} (HTTP {status})" if status is not None else reason)


class WinCCUnreachable(WinCCError):
    """Connection refused/reset, DNS failure, TLS failure, or a 5xx answer."""


class WinCCTimeout(WinCCUnreachable):
    """No answer in time."""


class WinCCUnauthorized(WinCCError):
    """401 after logging in again once: credentials are wrong or expired."""


class WinCCForbidden(WinCCError):
    """403: the WinCC user lacks the right."""


class WinCCNotFound(WinCCError):
    """404: unknown tag, alarm or archive."""


class WinCCRejected(WinCCError):
    """A 4xx other than the above (e.g. 400 with an error text, 409 already acknowledged)."""


class WinCCBadAnswer(WinCCError):
    """A 2xx whose body is not the JSON docs/wincc-rest-api.md describes."""
