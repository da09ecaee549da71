"""The one place the REST side's httpx client is built: the seam where the HTTP implementation under httpx's API
is chosen.

httpx's own transport (h11 in Python) is the default. `WINCC_BRIDGE_HTTP=aiohttp` builds the client of the
httpx-aiohttp package instead (same httpx API, aiohttp's C HTTP parser; install `httpx-aiohttp` first): an
experiment switch for bench/ (`python -m bench --http aiohttp`), not a configuration key. It is not the default
because its error mapping differs from httpx's (an aiohttp connection error surfaces as httpx.ConnectTimeout, so
WinCC "unreachable" would read "timeout") and the REST client's tests mock httpx's own transport; bench/README.md
has the measured saving.
"""

from __future__ import annotations

import os
from typing import Any

import httpx

__all__ = ["new_http_client"]

ENV = "WINCC_BRIDGE_HTTP"


def new_http_client(**kwargs: Any) -> httpx.AsyncClient:
    if os.environ.get(ENV, "httpx") == "aiohttp":
        from httpx_aiohttp import HttpxAiohttpClient  # optional, see the module docstring

        return HttpxAiohttpClient(**kwargs)
    return httpx.AsyncClient(**kwargs)
