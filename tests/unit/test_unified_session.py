"""How the unified dialect notices a lost session (respx: the answers a real runtime or a gateway in front of it
may give, which the simulator does not): HTTP 401, and GraphQL errors that say so only in their message. Each is
met with one new login and the request once more; a second refusal is reported, with no secret in it."""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from bridge.config import WinCCConfig
from bridge.wincc import open_client
from bridge.wincc.errors import WinCCRejected, WinCCUnauthorized
from bridge.wincc.models import TagValue

URL = "http://unified.test:8443/graphql"
PASSWORD = "uni-Secret-77"
TS = "2026-12-04T10:00:00.000Z"


def cfg(monkeypatch: pytest.MonkeyPatch) -> WinCCConfig:
    monkeypatch.setenv("UNI_UNIT_PW", PASSWORD)
    return WinCCConfig.model_validate(
        {
            "url": URL,
            "dialect": "unified",
            "auth": {"mode": "token", "username": "opcua", "password_env": "UNI_UNIT_PW"},
            "retry": {"attempts": 1, "backoff_s": 0, "max_backoff_s": 0.1},
        }
    )


class Runtime:
    """Answers login with a fresh token each time, and tagValues with `refusals` first, then values."""

    def __init__(self, refusals: list[httpx.Response]) -> None:
        self.refusals = list(refusals)
        self.logins = 0
        self.bearers: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if "login(" in body["query"]:
            self.logins += 1
            token = f"tok-{self.logins}"
            session = {"user": {"name": "opcua"}, "token": token, "expires": "2099-01-01T00:00:00Z", "error": None}
            return httpx.Response(200, json={"data": {"login": session}})
        self.bearers.append(request.headers.get("Authorization", ""))
        if self.refusals:
            return self.refusals.pop(0)
        items = [
            {
                "name": n,
                "value": {"value": 1.5, "timestamp": TS, "quality": {"quality": "GOOD_CASCADE"}},
                "error": {"code": "0", "description": ""},
            }
            for n in body["variables"]["names"]
        ]
        return httpx.Response(200, json={"data": {"tagValues": items}})


def gone(message: str) -> httpx.Response:
    return httpx.Response(200, json={"data": {"tagValues": None}, "errors": [{"message": message}]})


@pytest.mark.parametrize(
    "refusal",
    [httpx.Response(401), gone("Session expired"), gone("Not logged in"), gone("invalid token")],
    ids=["http-401", "session-expired", "not-logged-in", "invalid-token"],
)
async def test_a_lost_session_logs_in_again_once_and_repeats_the_request(
    monkeypatch: pytest.MonkeyPatch, refusal: httpx.Response
) -> None:
    runtime = Runtime([refusal])
    with respx.mock() as mock:
        mock.post(URL).mock(side_effect=runtime)
        async with open_client(cfg(monkeypatch)) as client:
            out = await client.read(["HMI_RT_1::Tank1.Level"])
    assert isinstance(out["HMI_RT_1::Tank1.Level"], TagValue)
    assert runtime.logins == 2 and runtime.bearers == ["Bearer tok-1", "Bearer tok-2"]


async def test_refused_again_after_a_new_login_is_reported_without_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = Runtime([httpx.Response(401), httpx.Response(401)])
    with respx.mock() as mock:
        mock.post(URL).mock(side_effect=runtime)
        async with open_client(cfg(monkeypatch)) as client:
            with pytest.raises(WinCCUnauthorized) as caught:
                await client.read(["HMI_RT_1::Tank1.Level"])
    assert runtime.logins == 2  # one new login, not a loop
    assert PASSWORD not in str(caught.value) and "tok-" not in str(caught.value)


async def test_an_error_that_is_not_about_the_session_costs_no_login(monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = Runtime([gone("Syntax Error: Unexpected Name")])
    with respx.mock() as mock:
        mock.post(URL).mock(side_effect=runtime)
        async with open_client(cfg(monkeypatch)) as client:
            with pytest.raises(WinCCRejected, match="Syntax Error"):
                await client.read(["HMI_RT_1::Tank1.Level"])
    assert runtime.logins == 1
