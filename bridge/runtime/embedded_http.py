"""uvicorn inside our own event loop (health endpoint, simulator, demo), without uvicorn owning the signals.

uvicorn's Server.serve() installs its own SIGINT/SIGTERM handlers and re-raises the signal when it returns;
in the bridge those signals belong to the CLI, which shuts everything down in order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator

import uvicorn

__all__ = ["EmbeddedServer"]


class EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield
