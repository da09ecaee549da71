"""The user manager checks passwords beside the event loop: get_user takes the verdict of `checked_off_loop`, a
locked client costs no check, and a flood beyond the waiting bound is refused as busy (the TCP proof, another
session's reads staying prompt during 20 logins, is in tests/reliability/test_security_hostile.py)."""

from __future__ import annotations

import asyncio
import threading

import pytest
from asyncua import ua

from bridge.config import OpcUaConfig
from bridge.opcua.security import user_manager as user_manager_module
from bridge.opcua.security.passwords import hash_password
from bridge.opcua.security.user_manager import BridgeUserManager
from bridge.opcua.security.users import BridgeUser, login_from
from tests.helpers import wait_until

PW = "op-secret-91"
PEER = ("127.0.0.1", 40000)


def manager() -> BridgeUserManager:
    users = [{"name": "op", "password_hash": hash_password(PW), "role": "operator"}]
    return BridgeUserManager(OpcUaConfig(users=users, failed_login_limit=2))


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The thread of every password check made."""
    threads: list[str] = []
    real = user_manager_module.verify_password

    def verify(password: str, stored: str) -> bool:
        threads.append(threading.current_thread().name)
        return real(password, stored)

    monkeypatch.setattr(user_manager_module, "verify_password", verify)
    return threads


async def test_get_user_takes_the_verdict_made_off_the_loop(checks: list[str]) -> None:
    m = manager()
    for password, expected in ((PW, True), ("wrong-one", False)):
        async with m.checked_off_loop(PEER, "op", password):
            with login_from("127.0.0.1"):
                user = m.get_user(None, "op", password)
        assert isinstance(user, BridgeUser) is expected
    assert len(checks) == 2 and all(name.startswith("password-check") for name in checks), checks


async def test_a_verdict_for_another_password_or_name_is_not_taken(checks: list[str]) -> None:
    m = manager()
    async with m.checked_off_loop(PEER, "op", "wrong-one"):
        with login_from("127.0.0.1"):
            assert isinstance(m.get_user(None, "op", PW), BridgeUser)  # checked again, on the spot
            assert m.get_user(None, "nobody", "wrong-one") is None
    assert checks[0].startswith("password-check") and len(checks) == 3


async def test_a_locked_client_costs_no_check(checks: list[str]) -> None:
    m = manager()
    with login_from("127.0.0.1"):
        for _ in range(2):
            assert m.get_user(None, "op", "wrong-one") is None
    checks.clear()
    async with m.checked_off_loop(PEER, "op", PW):
        with login_from("127.0.0.1"):
            assert m.get_user(None, "op", PW) is None  # the right password, but locked
    assert checks == []


async def test_logins_beyond_the_waiting_bound_are_refused_as_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    m = manager()
    release = threading.Event()
    monkeypatch.setattr(user_manager_module, "_MAX_WAITING", 3)
    monkeypatch.setattr(user_manager_module, "verify_password", lambda password, stored: release.wait(10))

    async def login() -> None:
        async with m.checked_off_loop(PEER, "op", PW):
            pass

    waiting = [asyncio.create_task(login()) for _ in range(3)]
    await wait_until(lambda: m._waiting == 3, timeout=5, what="three checks waiting")
    with pytest.raises(ua.UaStatusCodeError) as refused:
        await login()
    assert refused.value.code == ua.StatusCodes.BadServerTooBusy
    release.set()
    await asyncio.gather(*waiting)
    assert m._waiting == 0
    async with m.checked_off_loop(PEER, "op", PW):  # room again
        pass
