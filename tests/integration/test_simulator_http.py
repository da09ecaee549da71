"""The simulator over real HTTP, driven by the project's own REST client (so the contract is proven end to end in
both dialects), plus its fault modes and auth."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from bridge.config import WinCCConfig
from bridge.simulator import Simulator, SimulatorOptions
from bridge.wincc.client import open_client
from bridge.wincc.errors import WinCCNotFound, WinCCRejected, WinCCUnauthorized, WinCCUnreachable
from bridge.wincc.models import Folder, TagError, TagInfo, TagValue, WriteError

PW = "sim-Pw-77"


@pytest.fixture(params=["dp", "restservice"])
async def sim(request):
    s = Simulator(SimulatorOptions(dialect=request.param, port=0, auth="basic", password=PW, tags=2000,
                                   change_rate=1.0, tick_s=0.1))
    await s.start()
    yield s
    await s.stop()


def client_for(sim: Simulator, **auth):
    cfg = WinCCConfig.model_validate({
        "url": sim.url, "dialect": sim.options.dialect, "timeouts": {"connect_s": 1, "read_s": 2, "write_s": 2},
        "retry": {"attempts": 1},
        "auth": auth or {"mode": "basic", "username": "opcua", "password_env": "SIM_TEST_PW"},
    })
    return open_client(cfg, batch_size=500)


@pytest.fixture(autouse=True)
def _pw(monkeypatch):
    monkeypatch.setenv("SIM_TEST_PW", PW)


def level_name(sim: Simulator) -> str:
    return "System1.Tank1.Level" if sim.options.dialect == "dp" else "Tank1_Level"


def name_of(sim: Simulator, dp: str) -> str:
    return dp if sim.options.dialect == "dp" else sim.plant.tags[dp].rs_name


async def test_browse_read_write_archive_alarms(sim: Simulator) -> None:
    async with client_for(sim) as client:
        items = [i async for i in client.browse()]
        tags = {i.name: i for i in items if isinstance(i, TagInfo)}
        assert len(tags) == 2000 + 20 and any(isinstance(i, Folder) for i in items)
        level = tags[level_name(sim)]
        assert (level.unit, level.low, level.high, level.archived) == ("m", 0, 10, True)
        values = await client.read(list(tags))
        assert all(isinstance(v, TagValue) for v in values.values())
        assert sim.stats.read_batches and max(sim.stats.read_batches) <= 500
        missing = await client.read(["nope"])
        assert isinstance(missing["nope"], TagError)

        sp, i16 = name_of(sim, "System1.Tank1.LevelSetpoint"), name_of(sim, "System1.Counters.Int16Value")
        results = await client.write({sp: 4.0, i16: 500, level_name(sim): 1.0, "nope": 1})
        assert results[sp].ok
        assert results[i16].error is WriteError.out_of_range
        assert results[level_name(sim)].error in (WriteError.forbidden, WriteError.not_writable)
        assert results["nope"].error is WriteError.not_found
        assert sim.plant.tags["System1.Tank1.LevelSetpoint"].value == 4.0
        type_err = await client.write({sp: "high"})
        assert type_err[sp].error is WriteError.type_mismatch

        end = datetime.now(UTC)
        pages = [p async for p in client.archive(level, end - timedelta(hours=3), end, 100)]
        assert len(pages) > 1 and sum(len(p) for p in pages) >= 3 * 360 - 2

        sim.plant.set_alarm("1001", True)
        active = await client.active_alarms()
        assert [a.id for a in active] == ["1001"] and not active[0].acknowledged
        history = await client.alarm_history(end - timedelta(minutes=1), datetime.now(UTC) + timedelta(seconds=1))
        assert any(a.id == "1001" for a in history)
        if sim.options.dialect == "dp":
            await client.acknowledge("1001", "seen", "operator")
            assert sim.stats.acknowledged[-1] == {"id": "1001", "user": "operator", "comment": "seen"}
            with pytest.raises(WinCCRejected):
                await client.acknowledge("1001", "again", "operator")
            with pytest.raises(WinCCNotFound):
                await client.acknowledge("999", "", "operator")


async def test_faults(sim: Simulator) -> None:
    async with client_for(sim) as client:
        name = level_name(sim)
        sim.faults.set({"mode": "down"})
        with pytest.raises(WinCCUnreachable):
            await client.read([name])
        async with httpx.AsyncClient() as http:  # control still answers
            assert (await http.get(f"http://127.0.0.1:{sim.port}/_sim/health")).status_code == 200
        sim.faults.clear()
        assert isinstance((await client.read([name]))[name], TagValue)
        sim.faults.set({"mode": "partial", "tags": [name]})
        other = name_of(sim, "System1.Pump1.Speed")
        out = await client.read([name, other])
        assert isinstance(out[name], TagError) and isinstance(out[other], TagValue)
        sim.faults.clear()
        for mode, error in (("error500", WinCCUnreachable), ("unauthorized", WinCCUnauthorized)):
            sim.faults.set({"mode": mode})
            with pytest.raises(error):
                await client.read([name])
            sim.faults.clear()


async def test_wrong_password_is_401(sim: Simulator, monkeypatch) -> None:
    monkeypatch.setenv("SIM_WRONG", "nope")
    async with client_for(sim, mode="basic", username="opcua", password_env="SIM_WRONG") as client:
        with pytest.raises(WinCCUnauthorized):
            await client.read([level_name(sim)])


async def test_token_login_and_expiry() -> None:
    sim = Simulator(SimulatorOptions(port=0, auth="token", password=PW, token_ttl_s=60))
    await sim.start()
    try:
        async with client_for(sim, mode="token", username="opcua", password_env="SIM_TEST_PW") as client:
            assert isinstance((await client.read(["System1.Tank1.Level"]))["System1.Tank1.Level"], TagValue)
            async with httpx.AsyncClient() as http:
                await http.post(f"http://127.0.0.1:{sim.port}/_sim/faults", json={"mode": "expire_sessions"})
            # the client logs in again once on the 401 and carries on
            assert isinstance((await client.read(["System1.Tank1.Level"]))["System1.Tank1.Level"], TagValue)
            assert sim.stats.requests["POST /api/auth/login"] == 2
    finally:
        await sim.stop()
