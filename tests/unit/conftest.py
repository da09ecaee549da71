"""Unit tests that mock WinCC with respx: respx intercepts httpx's own transport, so those tests run the REST client
on it (WINCC_BRIDGE_HTTP=httpx). What sits above the engine - auth, retries, status and error mapping - is the same
for every engine; the default aiohttp engine is tested against real sockets (test_http_engine.py, the simulator)."""

from __future__ import annotations

import pytest

from bridge.wincc.http_engine import ENV


@pytest.fixture(autouse=True)
def _httpx_engine_under_respx(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if "respx" in vars(request.module):
        monkeypatch.setenv(ENV, "httpx")
