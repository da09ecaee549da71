"""The simulator over real HTTP, driven by the project's own REST client (so the contract is proven end to end in
both dialects), plus its fault modes and auth."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from bridge.config import WinCCConfig
from bridge.simulator import Simulator, SimulatorOptions, add_arguments
from bridge.wincc.client import open_client
from bridge.wincc.errors import (
    WinCCBadAnswer,
    WinCCNotFound,
    WinCCRejected,
    WinCCTimeout,
    WinCCUnauthorized,
    WinCCUnreachable,
)
from bridge.wincc.models import Folder, TagError, TagInfo, TagValue, WriteError
from tests.helpers import wait_until

PW = "sim-Pw-77"


@pytest.fixture(params=["dp", "restservice"])
async def sim(request):
    s = Simulator(
        SimulatorOptions(
            dialect=request.param, port=0, auth="basic", password=PW, tags=2000, change_rate=1.0, tick_s=0.1
        )
    )
    await s.start()
    yield s
    await s.stop()


def client_for(sim: Simulator, extra: dict[str, Any] | None = None, **auth):
    cfg = WinCCConfig.model_validate(
        {
            "url": sim.url,
            "dialect": sim.options.dialect,
            "timeouts": {"connect_s": 1, "read_s": 2, "write_s": 2},
            "retry": {"attempts": 1},
            "auth": auth or {"mode": "basic", "username": "opcua", "password_env": "SIM_TEST_PW"},
            **(extra or {}),
        }
    )
    return open_client(cfg, batch_size=500)


async def control(sim: Simulator, path: str, body: Any = None, method: str = "POST") -> httpx.Response:
    """The simulator's control API over HTTP (no auth), as the integration stacks call it."""
    async with httpx.AsyncClient(timeout=5) as http:
        return await http.request(method, f"http://127.0.0.1:{sim.port}{path}", json=body)


async def data(sim: Simulator, method: str, path: str, **kw: Any) -> httpx.Response:
    """A raw data request (basic auth) to the dialect's base URL: for what the project's client never sends."""
    async with httpx.AsyncClient(timeout=5, auth=("opcua", PW)) as http:
        return await http.request(method, sim.url + path, **kw)


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


def read_path(sim: Simulator) -> str:
    return "/WinCC/REST/Tags/ReadMultiple" if sim.options.dialect == "dp" else "/tagManagement/Values"


def read_body(sim: Simulator, names: list[str]) -> dict[str, Any]:
    return {"TagNames": names} if sim.options.dialect == "dp" else {"variableNames": names}


def one_path(sim: Simulator, name: str) -> str:
    """The single-tag endpoint of `name`, percent-encoded as the contract says."""
    prefix = "/api/dp/" if sim.options.dialect == "dp" else "/tagManagement/Value/"
    return prefix + quote(name, safe="")


async def serving(sim: Simulator) -> bool:
    try:
        return (await control(sim, "/_sim/health", method="GET")).status_code == 200
    except httpx.HTTPError:
        return False


# ---- browse ------------------------------------------------------------------------------------------------------
async def test_browse_pages_reuse_one_listing_until_the_tag_list_changes(sim: Simulator) -> None:
    """A page is a slice of a listing built once per tag list (the simulator counts builds), not a rebuild of every
    tag per page: 2020 tags in pages of 100 build each listing once; adding a tag builds it once more."""
    rs = sim.options.dialect == "restservice"
    endpoint = "GET /tagManagement/Variables" if rs else "GET /api/dp/browse"
    async with client_for(sim, {"browse_page_size": 100}) as client:
        sim.stats.reset()
        items = [i async for i in client.browse()]
        assert len([i for i in items if isinstance(i, TagInfo)]) == 2020
        pages, built = sim.stats.requests[endpoint], sim.stats.listings_built
        if rs:
            assert pages == 21 and built["restservice variables"] == 1 and built["restservice groups"] == 1
        else:  # one listing per folder (and the root), however many pages it takes
            folders = len([i for i in items if isinstance(i, Folder)])
            assert built["dp browse"] == folders + 1 and pages == folders + 1 + 2 * 9

        added = "System1.Extra.Added"
        r = await control(sim, "/_sim/tags", {"add": [{"name": added, "type": "int32", "value": 3}]})
        assert r.status_code == 200
        sim.stats.reset()
        tags = {i.name for i in [i async for i in client.browse()] if isinstance(i, TagInfo)}
        assert name_of(sim, added) in tags and len(tags) == 2021
        if rs:
            assert sim.stats.listings_built["restservice variables"] == 1


# ---- fault modes -------------------------------------------------------------------------------------------------
async def test_malformed_answers_are_bad_answers_not_crashes(sim: Simulator) -> None:
    names = [level_name(sim), name_of(sim, "System1.Pump1.Speed")]
    async with client_for(sim) as client:
        assert (await control(sim, "/_sim/faults", {"mode": "malformed"})).status_code == 200
        raw = await data(sim, "POST", read_path(sim), json=read_body(sim, names))
        assert raw.status_code == 200 and raw.headers["content-type"] == "application/json"
        with pytest.raises(ValueError):
            raw.json()
        with pytest.raises(WinCCBadAnswer):
            await client.read(names)
        with pytest.raises(WinCCBadAnswer):
            await client.read(names[:1])  # the single-tag endpoint too
        assert (await control(sim, "/_sim/faults", method="DELETE")).json() == {"active": []}
        assert all(isinstance(v, TagValue) for v in (await client.read(names)).values())


async def test_slow_delays_reads_and_a_short_timeout_gives_up(sim: Simulator) -> None:
    names = [level_name(sim), name_of(sim, "System1.Pump1.Speed")]
    assert (await control(sim, "/_sim/faults", {"mode": "slow", "latency_ms": 300})).status_code == 200
    async with client_for(sim) as client:
        t0 = time.monotonic()
        values = await client.read(names)
        assert time.monotonic() - t0 >= 0.3 and all(isinstance(v, TagValue) for v in values.values())
    sim.faults.set({"mode": "slow", "latency_ms": 1000})  # in-process, the same fault
    async with client_for(sim, {"timeouts": {"connect_s": 1, "read_s": 0.2, "write_s": 1}}) as client:
        with pytest.raises(WinCCTimeout):
            await client.read(names)
        with pytest.raises(WinCCTimeout):
            await client.read(names[:1])
        sim.faults.clear()
        assert isinstance((await client.read(names[:1]))[names[0]], TagValue)


async def test_restart_refuses_connections_then_serves_the_changed_tag_list(sim: Simulator) -> None:
    level, added_dp = level_name(sim), "System1.Extra.AfterRestart"
    added = added_dp if sim.options.dialect == "dp" else "Extra_AfterRestart"
    async with client_for(sim) as client:
        assert isinstance((await client.read([level]))[level], TagValue)
        r = await control(
            sim,
            "/_sim/restart",
            {"add": [{"name": added_dp, "type": "int32", "value": 7}], "remove": [level], "down_s": 0.5},
        )
        assert r.status_code == 200 and r.json()["restarting"] is True
        with pytest.raises(httpx.ConnectError):  # the listener is closed: refused, not an HTTP answer
            await control(sim, "/_sim/health", method="GET")
        with pytest.raises(WinCCUnreachable):
            await client.read([level, added])
        await wait_until(lambda: serving(sim), timeout=10, what="the simulator back after its restart")
        values = await client.read([level, added])
        assert isinstance(values[level], TagError) and values[added].value == 7
        tags = {i.name for i in [i async for i in client.browse()] if isinstance(i, TagInfo)}
        assert added in tags and level not in tags
        # a bad tag change is refused whole, and nothing goes down
        r = await control(sim, "/_sim/restart", {"add": [{"name": "System1.Extra.Bad", "type": "complex"}]})
        assert r.status_code == 400 and "complex" in r.json()["error"] and not sim.restarting
        assert "System1.Extra.Bad" not in sim.plant.tags


async def test_token_sessions_end_on_in_process_expiry_and_restart() -> None:
    sim = Simulator(SimulatorOptions(port=0, auth="token", password=PW, token_ttl_s=60))
    await sim.start()
    name = "System1.Tank1.Level"
    try:
        async with client_for(sim, mode="token", username="opcua", password_env="SIM_TEST_PW") as client:
            assert isinstance((await client.read([name]))[name], TagValue)
            sim.faults.set({"mode": "expire_sessions"})  # in-process: the token is refused once, login again
            assert sim.faults.modes == {}
            assert isinstance((await client.read([name]))[name], TagValue)
            assert sim.stats.requests["POST /api/auth/login"] == 2

            await sim.restart(add=[{"name": "System1.Extra.New", "type": "bool", "value": True}], down_s=0.3)
            assert sim.restarting
            with pytest.raises(RuntimeError):
                await sim.restart()
            await wait_until(lambda: not sim.restarting, timeout=10, what="restart over")
            values = await client.read([name, "System1.Extra.New"])
            assert values["System1.Extra.New"].value is True
            assert sim.stats.requests["POST /api/auth/login"] == 3  # the restart dropped the token
    finally:
        await sim.stop()


async def test_login_goes_through_the_fault_gate() -> None:
    sim = Simulator(SimulatorOptions(port=0, auth="token", password=PW))
    await sim.start()
    name, login = "System1.Tank1.Level", "POST /api/auth/login"
    token = {"mode": "token", "username": "opcua", "password_env": "SIM_TEST_PW"}
    fast = {"timeouts": {"connect_s": 1, "read_s": 0.2, "write_s": 1}}
    try:
        for spec, error in (
            ({"mode": "error500"}, WinCCUnreachable),
            ({"mode": "unauthorized"}, WinCCUnauthorized),
            ({"mode": "slow", "latency_ms": 600}, WinCCTimeout),
        ):
            sim.faults.clear()
            sim.faults.set(spec)
            before = sim.stats.requests[login]
            async with client_for(sim, fast, **token) as client:
                with pytest.raises(error):
                    await client.read([name])
            assert sim.stats.requests[login] == before + 1
            assert sim.stats.requests["GET /api/dp/{name}"] == 0  # it never got past the login
        sim.faults.clear()
        async with client_for(sim, **token) as client:
            assert isinstance((await client.read([name]))[name], TagValue)
    finally:
        await sim.stop()


@pytest.mark.parametrize("sim", ["restservice"], indirect=True)
async def test_partial_fails_the_listed_items_of_batch_writes(sim: Simulator) -> None:
    sp, other = name_of(sim, "System1.Tank1.LevelSetpoint"), name_of(sim, "System1.Counters.Batch")
    async with client_for(sim) as client:
        assert (await control(sim, "/_sim/faults", {"mode": "partial", "tags": [sp]})).status_code == 200
        results = await client.write({sp: 4.0, other: 5})
        assert not results[sp].ok and "99" in results[sp].reason and results[other].ok
        raw = await data(
            sim,
            "PUT",
            "/tagManagement/Values",
            json=[{"variableName": sp, "value": 4.0}, {"variableName": other, "value": 6}],
        )
        assert [i["errorCode"] for i in raw.json()] == [99, 0]
        assert sim.plant.tags["System1.Tank1.LevelSetpoint"].value == 8.0  # never applied
        assert sim.plant.tags["System1.Counters.Batch"].value == 6


WRITE_CASES = {
    "dp": [
        ({"status": 400, "error": "type mismatch: simulated"}, WriteError.type_mismatch),
        ({"status": 400, "error": "out of range: simulated"}, WriteError.out_of_range),
        ({"status": 403, "error": "no right"}, WriteError.forbidden),
        ({"status": 404, "error": "gone"}, WriteError.not_found),
        ({"status": 500, "error": "boom"}, WriteError.unreachable),
    ],
    "restservice": [
        ({"errorCode": 3, "errorDescription": "out of range: simulated"}, WriteError.out_of_range),
        ({"errorCode": 2, "errorDescription": "type mismatch"}, WriteError.type_mismatch),
        ({"errorCode": 7, "errorDescription": "no right"}, WriteError.forbidden),
        ({"status": 500}, WriteError.unreachable),
    ],
}


async def test_write_errors_fail_only_the_listed_tags(sim: Simulator) -> None:
    dp = sim.options.dialect == "dp"
    sp, other = name_of(sim, "System1.Tank1.LevelSetpoint"), name_of(sim, "System1.Counters.Batch")
    setpoint = sim.plant.tags["System1.Tank1.LevelSetpoint"]
    async with client_for(sim) as client:
        for n, (spec, expected) in enumerate(WRITE_CASES[sim.options.dialect]):
            r = await control(sim, "/_sim/faults", {"mode": "write_errors", "tags": {sp: spec}})
            assert r.status_code == 200, r.text
            whole = "status" in spec and not dp  # a restservice status fails the whole PUT
            results = await client.write({sp: 4.0, other: n})
            assert results[sp].error is expected, (spec, results[sp])
            assert results[other].ok is not whole and (results[other].error is expected) is whole
            single = await client.write({sp: 4.0})  # restservice: PUT /tagManagement/Value/<name>
            assert single[sp].error is expected
            assert setpoint.value == 8.0, "a failed write must not be applied"
        raw = await data(sim, "PUT", one_path(sim, sp), json={"value": 4.0})
        if dp:
            assert (raw.status_code, raw.json()) == (500, {"error": "boom"})
        else:
            assert raw.status_code == 500 and raw.json()["error"]
        # in-process, the same fault; then cleared
        sim.faults.set({"mode": "write_errors", "tags": {sp: WRITE_CASES[sim.options.dialect][0][0]}})
        assert (await client.write({sp: 4.0}))[sp].error is WRITE_CASES[sim.options.dialect][0][1]
        assert (await control(sim, "/_sim/faults", method="DELETE")).status_code == 200
        assert (await client.write({sp: 4.0}))[sp].ok and setpoint.value == 4.0


async def test_forbidden_refuses_every_write(sim: Simulator) -> None:
    sp, other = name_of(sim, "System1.Tank1.LevelSetpoint"), name_of(sim, "System1.Counters.Batch")
    async with client_for(sim) as client:
        assert (await control(sim, "/_sim/faults", {"mode": "forbidden"})).status_code == 200
        results = await client.write({sp: 4.0, other: 5})
        assert results[sp].error is WriteError.forbidden and results[other].error is WriteError.forbidden
        assert (await client.write({sp: 4.0}))[sp].error is WriteError.forbidden
        raw = await data(sim, "PUT", one_path(sim, sp), json={"value": 4.0})
        if sim.options.dialect == "dp":
            assert raw.status_code == 403
        else:
            assert raw.status_code == 200 and raw.json()["errorcode"] == 7
        assert sim.plant.tags["System1.Tank1.LevelSetpoint"].value == 8.0
        assert isinstance((await client.read([sp, other]))[sp], TagValue)  # reads are unaffected
        sim.faults.clear()
        assert (await client.write({sp: 4.0}))[sp].ok


# ---- bad requests ------------------------------------------------------------------------------------------------
BAD_REQUESTS = {
    "dp": [
        ("POST", "/api/auth/login", {"content": b"username=opcua"}),
        ("POST", "/api/auth/login", {}),
        ("POST", "/api/auth/login", {"json": ["opcua", PW]}),
        ("POST", "/api/auth/login", {"json": {"username": "opcua", "password": 77}}),
        ("POST", "/api/alert/1001/acknowledge", {}),
        ("PUT", "/api/dp/System1.Tank1.LevelSetpoint", {"content": b"{oops"}),
        ("PUT", "/api/dp/System1.Tank1.LevelSetpoint", {"json": {"val": 4.0}}),
        ("POST", "/WinCC/REST/Tags/ReadMultiple", {"json": {"TagNames": "System1.Tank1.Level"}}),
        ("POST", "/WinCC/REST/Tags/ReadMultiple", {"json": {"TagNames": [1, 2]}}),
        ("POST", "/WinCC/REST/Tags/ReadMultiple", {"content": b"TagNames"}),
        ("GET", "/api/dp/browse?path=&limit=many", {}),
        ("GET", "/api/dp/browse?path=&continuation=xyz", {}),
        ("GET", "/api/history/System1.Tank1.Level?start=yesterday", {}),
        ("GET", "/api/alerts/history?limit=-1", {}),
    ],
    "restservice": [
        ("POST", "/tagManagement/Values", {"content": b"nope"}),
        ("POST", "/tagManagement/Values", {"json": {"variableNames": "Tank1_Level"}}),
        ("PUT", "/tagManagement/Values", {"json": {"variableName": "Tank1_LevelSetpoint", "value": 4.0}}),
        ("PUT", "/tagManagement/Values", {"json": [{"value": 4.0}]}),
        ("PUT", "/tagManagement/Value/Tank1_LevelSetpoint", {"content": b""}),
        ("PUT", "/tagManagement/Value/Tank1_LevelSetpoint", {"content": b"4.0"}),
        ("POST", "/tagLogging/Values", {"json": {"archives": "ProcessArchive"}}),
        (
            "POST",
            "/tagLogging/Values",
            {
                "json": {
                    "archives": [
                        {"name": "ProcessArchive", "variables": [{"name": "Tank1_Level_Arch", "timeFrom": "last week"}]}
                    ]
                }
            },
        ),
        ("GET", "/tagManagement/Variables?continuationPoint=xyz", {}),
        ("GET", "/alarmLogging/MessageList?maxValues=all", {}),
    ],
}
BAD_CONTROL = [
    ("/_sim/faults", {"json": {"mode": "bogus"}}),
    ("/_sim/faults", {"json": {"mode": "write_errors", "tags": {"x": {"status": 200}}}}),
    ("/_sim/faults", {"json": {"mode": "slow", "latency_ms": "long"}}),
    ("/_sim/faults", {"content": b"down"}),
    ("/_sim/tags", {"content": b"x"}),
    ("/_sim/tags", {"json": {"set": {"System1.Nope": 1}}}),
    ("/_sim/restart", {"json": {"down_s": "soon"}}),
]


async def test_bad_request_bodies_answer_400_with_an_error(sim: Simulator) -> None:
    for method, path, kw in BAD_REQUESTS[sim.options.dialect]:
        r = await data(sim, method, path, **kw)
        assert r.status_code == 400, (method, path, r.status_code, r.text)
        assert isinstance(r.json()["error"], str) and r.json()["error"], (method, path)
    async with httpx.AsyncClient(timeout=5) as http:
        for path, kw in BAD_CONTROL:
            r = await http.post(f"http://127.0.0.1:{sim.port}{path}", **kw)
            assert r.status_code == 400 and r.json()["error"], (path, r.text)
    assert sim.plant.tags["System1.Tank1.LevelSetpoint"].value == 8.0 and sim.faults.modes == {}
    assert not sim.stats.writes and not sim.restarting


# ---- single-tag endpoints ----------------------------------------------------------------------------------------
ODD_TAGS = [  # (dp name, restservice name): space, '/', ':', non-ASCII, and a '%' that must be decoded only once
    ("System1.Line/A.Motor:1 Ström", "Line A/Motor:1 Ström"),
    ("System1.Odd.Rate%41", "Rate%41"),
]


async def test_single_tag_endpoints_with_odd_names(sim: Simulator) -> None:
    dp = sim.options.dialect == "dp"
    add = [{"name": d, "rs_name": r, "type": "double", "value": 1.5, "writable": True} for d, r in ODD_TAGS]
    assert (await control(sim, "/_sim/tags", {"add": add})).status_code == 200
    names = [d if dp else r for d, r in ODD_TAGS] + [name_of(sim, "System1.Hall 2.Temperatur Außen")]
    for name in names:
        r = await data(sim, "GET", one_path(sim, name))
        assert r.status_code == 200, (name, r.text)
        body = r.json()
        if dp:
            assert body["name"] == name and isinstance(body["value"], float) and body["quality"] == 192
        else:
            assert body["variableName"] == name and body["errorCode"] == 0 and body["dataType"] in (8, 9)
        assert body["timestamp"].endswith("Z")
    for (dp_name, _), name in zip(ODD_TAGS, names, strict=False):
        r = await data(sim, "PUT", one_path(sim, name), json={"value": 3.25})
        assert r.status_code == 200 and (r.json()["value"] == 3.25 if dp else r.json()["errorcode"] == 0)
        assert sim.plant.tags[dp_name].value == 3.25
    async with client_for(sim) as client:  # the project's client uses these endpoints for one tag
        for dp_name, name in zip((d for d, _ in ODD_TAGS), names, strict=False):
            assert (await client.write({name: 4.5}))[name].ok and sim.plant.tags[dp_name].value == 4.5
            assert (await client.read([name]))[name].value == 4.5
        missing = await client.read(["Nope/Gone: ö"])
        assert isinstance(missing["Nope/Gone: ö"], TagError)
        assert (await client.write({"Nope/Gone: ö": 1}))["Nope/Gone: ö"].error is WriteError.not_found
    get = await data(sim, "GET", one_path(sim, "Nope"))
    put = await data(sim, "PUT", one_path(sim, "Nope"), json={"value": 1})
    if dp:
        assert (get.status_code, put.status_code) == (404, 404)
    else:
        assert (get.status_code, get.json()["errorCode"]) == (200, 1)
        assert (put.status_code, put.json()["errorcode"]) == (200, 1)


def test_more_than_200k_generated_tags_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args(["--tags", "200000"]).tags == 200_000
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["--tags", "200001"])
    assert exc.value.code == 2 and "0..200000" in capsys.readouterr().err
    with pytest.raises(ValueError, match="200000"):
        Simulator(SimulatorOptions(tags=200_001))
