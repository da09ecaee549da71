"""A listening port that is already taken, said in one line that names the setting to change.

`ensure_free` binds the address once (with SO_REUSEADDR, as asyncua and uvicorn do, so a socket in TIME_WAIT is
no conflict) and releases it at once: checked before the slow part of a start (the WinCC browse), a taken port
fails in milliseconds instead of after the browse, and before any banner claims the server is up.
"""

from __future__ import annotations

import errno
import socket

__all__ = ["PortInUse", "ensure_free", "is_in_use_error"]


class PortInUse(OSError):
    """`setting` is the config key that chose the port; the CLI may name its own flag instead."""

    def __init__(self, what: str, host: str, port: int, setting: str, reason: str = "already in use") -> None:
        self.what, self.host, self.port, self.setting, self.reason = what, host, port, setting, reason
        super().__init__(errno.EADDRINUSE, f"{what} port {port} on {host} is {reason}")

    def __str__(self) -> str:  # without OSError's "[Errno 98]" prefix: the operator reads the sentence
        return str(self.strerror)

    def advice(self, change: str | None = None) -> str:
        """One line for the operator; `change` names what to change (default: the config key)."""
        return f"{self}; choose another port with {change or self.setting}"


def is_in_use_error(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL)


def ensure_free(host: str, port: int, what: str, setting: str) -> None:
    """Raise PortInUse if `host:port` cannot be bound now (taken, privileged, or not an address of this host)."""
    if port == 0:
        return
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except OSError:
        return  # a host name that does not resolve is the server's own error to report
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            if not is_in_use_error(exc):
                raise
            reason = {
                errno.EACCES: "not allowed for this user (below 1024?)",
                errno.EADDRNOTAVAIL: "not an address of this machine",
            }.get(exc.errno or 0, "already in use")
            raise PortInUse(what, host, port, setting, reason) from None
