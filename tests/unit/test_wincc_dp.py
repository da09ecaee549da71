"""dp dialect against respx: every endpoint, batching, partial errors, write mapping, archive paging."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx

from bridge.config import WinCCConfig
from bridge.wincc import WinCCClient, open_client
from bridge.wincc.dp import DpClient
from bridge.wincc.errors import WinCCBadAnswer, WinCCNotFound, WinCCRejected, WinCCUnreachable
from bridge.wincc.models import AlarmState, DataType, Folder, TagError, TagErrorKind, TagInfo, TagValue, WriteError
from bridge.wincc.parse import format_ts, parse_ts

BASE = "http://wincc.test:8700"
TS = "2026-11-24T10:15:30.250Z"
T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def cfg(**kw: object) -> WinCCConfig:
    base = {"url": BASE, "retry": {"attempts": 2, "backoff_s": 0}}
    base |= kw
    return WinCCConfig.model_validate(base)


def query(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(str(request.url)).query, keep_blank_values=True).items()}


def read_ok(request: httpx.Request) -> httpx.Response:
    names = json.loads(request.content)["TagNames"]
    return httpx.Response(
        200, json={"Tags": [{"Name": n, "Value": 1.5, "Quality": 192, "Timestamp": TS, "Error": None} for n in names]}
    )


def test_protocol_and_dialect() -> None:
    client = open_client(cfg())
    assert isinstance(client, WinCCClient)
    assert client.dialect == "dp"


# -- browse -------------------------------------------------------------------------------------------------


async def test_browse_recurses_pages_and_orders_parents_first() -> None:
    tree = {
        "": [{"name": "System1", "kind": "folder"}],
        "System1.": [
            {"name": "System1.Tank1", "kind": "folder"},
            {"name": "System1.Pump", "kind": "dp", "type": "bool", "writable": True},
        ],
        "System1.Tank1.": [
            {
                "name": "System1.Tank1.Level",
                "kind": "dp",
                "type": "float",
                "unit": "m",
                "description": "level",
                "min": 0,
                "max": 10,
                "writable": True,
                "archived": True,
            },
            {"name": "System1.Tank1.Odd", "kind": "dp", "type": "quaternion"},
        ],
    }

    def handler(request: httpx.Request) -> httpx.Response:
        q = query(request)
        items = tree[q["path"]]
        assert q["limit"] == "2"
        start = int(q.get("continuation") or 0)
        page = items[start : start + 2]
        nxt = str(start + 2) if start + 2 < len(items) else None
        return httpx.Response(200, json={"path": q["path"], "items": page, "continuation": nxt})

    with respx.mock(base_url=BASE) as mock:
        mock.get("/api/dp/browse").mock(side_effect=handler)
        async with open_client(cfg(browse_page_size=2)) as client:
            got = [x async for x in client.browse()]
    assert got[0] == Folder(("System1",))
    assert got[1] == Folder(("System1", "Tank1"))
    names = [x.name if isinstance(x, TagInfo) else x.path for x in got]
    assert names.index(("System1", "Tank1")) < names.index("System1.Tank1.Level")
    level = next(x for x in got if isinstance(x, TagInfo) and x.name == "System1.Tank1.Level")
    assert level == TagInfo(
        name="System1.Tank1.Level",
        data_type=DataType.float,
        folder=("System1", "Tank1"),
        display_name="Level",
        unit="m",
        description="level",
        low=0.0,
        high=10.0,
        writable=True,
        archived=True,
    )
    odd = next(x for x in got if isinstance(x, TagInfo) and x.name == "System1.Tank1.Odd")
    assert odd.data_type == DataType.double and not odd.writable
    pump = next(x for x in got if isinstance(x, TagInfo) and x.name == "System1.Pump")
    assert pump.data_type == DataType.bool and pump.folder == ("System1",)


async def test_browse_from_root() -> None:
    with respx.mock(base_url=BASE) as mock:
        route = mock.get("/api/dp/browse").mock(
            return_value=httpx.Response(200, json={"items": [{"name": "S.T.x", "kind": "dp", "type": "int16"}]})
        )
        async with open_client(cfg(browse_root="S.T")) as client:
            got = [x async for x in client.browse()]
        assert query(route.calls[0].request)["path"] == "S.T."
    assert got[:2] == [Folder(("S",)), Folder(("S", "T"))]
    assert isinstance(got[2], TagInfo) and got[2].display_name == "x"


async def test_browse_bad_answer() -> None:
    with respx.mock(base_url=BASE) as mock:
        mock.get("/api/dp/browse").mock(return_value=httpx.Response(200, json={"nope": 1}))
        async with open_client(cfg()) as client:
            with pytest.raises(WinCCBadAnswer):
                _ = [x async for x in client.browse()]


# -- read ---------------------------------------------------------------------------------------------------


async def test_read_10000_tags_in_20_requests() -> None:
    names = [f"System1.T{i}" for i in range(10_000)]
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/WinCC/REST/Tags/ReadMultiple").mock(side_effect=read_ok)
        async with open_client(cfg(), batch_size=500) as client:
            out = await client.read(names)
        assert route.call_count == 20
        assert all(len(json.loads(c.request.content)["TagNames"]) == 500 for c in route.calls)
    assert list(out) == names
    v = out["System1.T42"]
    assert isinstance(v, TagValue) and v.value == 1.5 and v.quality == 0xC0
    assert v.timestamp == datetime(2026, 11, 24, 10, 15, 30, 250000, tzinfo=UTC)


async def test_read_item_errors_and_bad_items() -> None:
    answer = {
        "Tags": [
            {"Name": "ok", "Value": 3, "Quality": "uncertain", "Timestamp": "2026-11-24T11:15:30+01:00", "Error": None},
            {"Name": "gone", "Value": None, "Quality": None, "Timestamp": None, "Error": "not found"},
            {"Name": "err", "Error": "driver down"},
            {"Name": "badq", "Value": 1, "Quality": "splendid", "Timestamp": TS},
            {"Name": "badts", "Value": 1, "Quality": 192, "Timestamp": "yesterday"},
            {"Name": "noq", "Value": "x", "Timestamp": TS},
        ]
    }
    with respx.mock(base_url=BASE) as mock:
        mock.post("/WinCC/REST/Tags/ReadMultiple").mock(return_value=httpx.Response(200, json=answer))
        async with open_client(cfg()) as client:
            out = await client.read(["ok", "gone", "err", "badq", "badts", "noq", "missing"])
    assert isinstance(out["ok"], TagValue) and out["ok"].quality == 0x40
    assert out["ok"].timestamp == datetime(2026, 11, 24, 10, 15, 30, tzinfo=UTC)
    assert isinstance(out["gone"], TagError) and out["gone"].kind == TagErrorKind.not_found
    assert isinstance(out["err"], TagError) and out["err"].kind == TagErrorKind.item_error
    assert isinstance(out["badq"], TagError) and out["badq"].kind == TagErrorKind.bad_answer
    assert isinstance(out["badts"], TagError) and out["badts"].kind == TagErrorKind.bad_answer
    assert isinstance(out["noq"], TagValue) and out["noq"].quality == 0xC0
    assert isinstance(out["missing"], TagError) and out["missing"].kind == TagErrorKind.bad_answer


async def test_read_partial_batch_failure() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if "b0" in json.loads(request.content)["TagNames"]:
            return httpx.Response(400, json={"error": "no"})
        return read_ok(request)

    with respx.mock(base_url=BASE) as mock:
        mock.post("/WinCC/REST/Tags/ReadMultiple").mock(side_effect=handler)
        async with open_client(cfg(), batch_size=2) as client:
            out = await client.read(["a0", "a1", "b0", "b1", "c0"])
    assert isinstance(out["a0"], TagValue) and isinstance(out["c0"], TagValue)
    assert isinstance(out["b0"], TagError) and out["b0"].kind == TagErrorKind.bad_answer
    assert isinstance(out["b1"], TagError)


async def test_read_all_batches_fail_raises() -> None:
    with respx.mock(base_url=BASE) as mock:
        mock.post("/WinCC/REST/Tags/ReadMultiple").mock(return_value=httpx.Response(503))
        async with open_client(cfg(), batch_size=2) as client:
            with pytest.raises(WinCCUnreachable):
                await client.read(["a", "b", "c"])


async def test_read_malformed_json_all_fail() -> None:
    with respx.mock(base_url=BASE) as mock:
        mock.post("/WinCC/REST/Tags/ReadMultiple").mock(return_value=httpx.Response(200, text="<html>"))
        mock.get("/api/dp/a").mock(side_effect=[httpx.Response(200, text="<html>"), httpx.Response(200, json=[1])])
        async with open_client(cfg()) as client:
            with pytest.raises(WinCCBadAnswer):
                await client.read(["a", "b"])
            with pytest.raises(WinCCBadAnswer):  # read one: not JSON
                await client.read(["a"])
            with pytest.raises(WinCCBadAnswer):  # read one: JSON, but not an object
                await client.read(["a"])


async def test_read_wrong_types_in_items() -> None:
    answer = {"Tags": ["junk", {"Name": 5}, {"Name": "c", "Quality": True, "Timestamp": TS}]}
    with respx.mock(base_url=BASE) as mock:
        mock.post("/WinCC/REST/Tags/ReadMultiple").mock(return_value=httpx.Response(200, json=answer))
        async with open_client(cfg()) as client:
            out = await client.read(["a", "b", "c"])
    assert all(isinstance(out[n], TagError) and out[n].kind == TagErrorKind.bad_answer for n in "abc")


async def test_read_empty_and_duplicates() -> None:
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/WinCC/REST/Tags/ReadMultiple").mock(side_effect=read_ok)
        one = mock.get("/api/dp/a").mock(
            return_value=httpx.Response(200, json={"name": "a", "value": 1, "quality": 192, "timestamp": TS})
        )
        async with open_client(cfg()) as client:
            assert await client.read([]) == {}
            out = await client.read(["a", "a"])  # one tag after de-duplication: the read-one call
            out2 = await client.read(["a", "b", "a"])
        assert one.call_count == 1 and route.call_count == 1
        assert json.loads(route.calls[0].request.content) == {"TagNames": ["a", "b"]}
    assert list(out) == ["a"] and sorted(out2) == ["a", "b"]


# -- write --------------------------------------------------------------------------------------------------


async def test_write_status_mapping_and_quoting() -> None:
    odd = "Tank 1/Level:ä.x"
    with respx.mock(base_url=BASE) as mock:
        ok = mock.put("/api/dp/ok").mock(return_value=httpx.Response(200, json={"name": "ok", "value": 50}))
        mock.put("/api/dp/tm").mock(return_value=httpx.Response(400, json={"error": "type mismatch: want float"}))
        mock.put("/api/dp/oor").mock(return_value=httpx.Response(400, json={"error": "out of range 0..10"}))
        mock.put("/api/dp/inv").mock(return_value=httpx.Response(400, json={"error": "weird"}))
        mock.put("/api/dp/ro").mock(return_value=httpx.Response(403))
        mock.put("/api/dp/nf").mock(return_value=httpx.Response(404))
        mock.put("/api/dp/to").mock(side_effect=httpx.ConnectTimeout("t"))
        mock.put("/api/dp/ce").mock(side_effect=httpx.ConnectError("refused"))
        mock.put("/api/dp/five").mock(return_value=httpx.Response(500))
        mock.put("/api/dp/badbody").mock(return_value=httpx.Response(200, text="nope"))
        quoted = mock.put(url=f"{BASE}/api/dp/Tank%201%2FLevel%3A%C3%A4.x").mock(
            return_value=httpx.Response(200, json={"name": odd, "value": 1})
        )
        async with open_client(cfg()) as client:
            names = ["ok", "tm", "oor", "inv", "ro", "nf", "to", "ce", "five", "badbody", odd]
            out = await client.write(dict.fromkeys(names, 50))
        assert json.loads(ok.calls[0].request.content) == {"value": 50}
        assert quoted.call_count == 1
    assert out["ok"].ok and out["ok"].value == 50
    assert out["tm"].error == WriteError.type_mismatch and "type mismatch" in out["tm"].reason
    assert out["oor"].error == WriteError.out_of_range
    assert out["inv"].error == WriteError.invalid
    assert out["ro"].error == WriteError.forbidden
    assert out["nf"].error == WriteError.not_found
    assert out["to"].error == WriteError.timeout
    assert out["ce"].error == WriteError.unreachable
    assert out["five"].error == WriteError.unreachable
    assert out["badbody"].error == WriteError.unreachable
    assert out[odd].ok


async def test_write_datetime_as_iso() -> None:
    with respx.mock(base_url=BASE) as mock:
        r = mock.put("/api/dp/d").mock(return_value=httpx.Response(200, json={"name": "d"}))
        async with open_client(cfg()) as client:
            await client.write({"d": datetime(2026, 1, 2, 3, 4, 5, 678900, tzinfo=UTC)})
        assert json.loads(r.calls[0].request.content) == {"value": "2026-01-02T03:04:05.678Z"}


# -- alarms -------------------------------------------------------------------------------------------------

ALERT = {
    "id": "1042",
    "dp": "System1.Tank1.Level",
    "text": "Tank 1 level high",
    "class": "Alarm",
    "priority": 500,
    "state": "came",
    "acknowledged": False,
    "timestamp": TS,
    "value": 9.7,
}


async def test_active_alarms() -> None:
    with respx.mock(base_url=BASE) as mock:
        mock.get("/api/alerts/active").mock(
            return_value=httpx.Response(200, json={"alerts": [ALERT, {"id": "x", "state": "bogus"}]})
        )
        async with open_client(cfg()) as client:
            alarms = await client.active_alarms()
    assert len(alarms) == 1
    a = alarms[0]
    assert (a.id, a.tag, a.state, a.acknowledged, a.priority, a.value) == (
        "1042",
        "System1.Tank1.Level",
        AlarmState.came,
        False,
        500,
        9.7,
    )


async def test_alarm_history_params() -> None:
    with respx.mock(base_url=BASE) as mock:
        route = mock.get("/api/alerts/history").mock(
            return_value=httpx.Response(200, json={"alerts": [ALERT, ALERT | {"state": "went", "acknowledged": True}]})
        )
        async with open_client(cfg()) as client:
            alarms = await client.alarm_history(T0, T0 + timedelta(hours=1), limit=10)
        assert query(route.calls[0].request) == {
            "start": "2026-11-24T10:00:00.000Z",
            "end": "2026-11-24T11:00:00.000Z",
            "limit": "10",
        }
    assert [a.state for a in alarms] == [AlarmState.came, AlarmState.went]
    assert alarms[1].acknowledged


async def test_acknowledge() -> None:
    with respx.mock(base_url=BASE) as mock:
        ok = mock.post("/api/alert/1042/acknowledge").mock(
            return_value=httpx.Response(200, json={"id": "1042", "acknowledged": True})
        )
        mock.post("/api/alert/9/acknowledge").mock(return_value=httpx.Response(404))
        mock.post("/api/alert/5/acknowledge").mock(return_value=httpx.Response(409))
        async with open_client(cfg()) as client:
            await client.acknowledge("1042", "seen", "operator")
            with pytest.raises(WinCCNotFound):
                await client.acknowledge("9", "", "u")
            with pytest.raises(WinCCRejected) as info:
                await client.acknowledge("5", "", "u")
        assert json.loads(ok.calls[0].request.content) == {"comment": "seen", "user": "operator"}
    assert info.value.status == 409


# -- archive ------------------------------------------------------------------------------------------------


def archive_server(values: list[tuple[datetime, float]], cap: int):
    """A fake /api/history that honours start/end inclusively and caps answers at min(limit, cap)."""
    requests: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        q = query(request)
        requests.append(q)
        start, end, limit = parse_ts(q["start"]), parse_ts(q["end"]), int(q["limit"])
        sel = [(t, v) for t, v in values if start <= t <= end][: min(limit, cap)]
        return httpx.Response(
            200,
            json={"name": "x", "values": [{"value": v, "quality": 192, "timestamp": format_ts(t)} for t, v in sel]},
        )

    return handler, requests


async def test_archive_pages_past_cap_with_shared_timestamps() -> None:
    # 25 values; several share timestamps, including across page boundaries.
    values = [(T0 + timedelta(seconds=i // 3), float(i)) for i in range(25)]
    handler, requests = archive_server(values, cap=4)
    with respx.mock(base_url=BASE) as mock:
        mock.get("/api/history/A.B").mock(side_effect=handler)
        async with open_client(cfg()) as client:
            pages = [p async for p in client.archive("A.B", T0, T0 + timedelta(hours=1), page_size=4)]
    got = [v.value for p in pages for v in p]
    assert got == [float(i) for i in range(25)]
    assert all(len(p) <= 4 for p in pages)
    assert len(requests) < 40


async def test_archive_respects_end_and_tag_info() -> None:
    values = [(T0 + timedelta(seconds=i), float(i)) for i in range(10)]
    handler, _ = archive_server(values, cap=1000)
    with respx.mock(base_url=BASE) as mock:
        mock.get("/api/history/A.B").mock(side_effect=handler)
        async with open_client(cfg()) as client:
            tag = TagInfo("A.B", DataType.double, archived=True)
            pages = [p async for p in client.archive(tag, T0 + timedelta(seconds=2), T0 + timedelta(seconds=5))]
    assert [v.value for p in pages for v in p] == [2.0, 3.0, 4.0, 5.0]


async def test_archive_not_archived() -> None:
    with respx.mock(base_url=BASE) as mock:
        mock.get("/api/history/nope").mock(return_value=httpx.Response(404))
        async with open_client(cfg()) as client:
            with pytest.raises(WinCCNotFound):
                _ = [p async for p in client.archive("nope", T0, T0)]


def test_timestamps() -> None:
    assert parse_ts("2026-11-24T10:15:30.250Z") == datetime(2026, 11, 24, 10, 15, 30, 250000, tzinfo=UTC)
    assert parse_ts("2026-11-24T12:15:30+02:00") == datetime(2026, 11, 24, 10, 15, 30, tzinfo=UTC)
    assert format_ts(datetime(2026, 11, 24, 12, 0, tzinfo=UTC) + timedelta(microseconds=1500)) == (
        "2026-11-24T12:00:00.001Z"
    )
    with pytest.raises(ValueError):
        parse_ts("tomorrow")


# -- unchanged answers ----------------------------------------------------------------------------------------


async def test_unchanged_items_come_back_as_the_same_object() -> None:
    """The sync engine skips a tag by identity: an item WinCC repeats exactly must return the same TagValue, and
    any change (value, its JSON type, quality, timestamp, an error in between) a new one."""
    answers = [
        [
            {"Name": "a", "Value": 1, "Quality": 192, "Timestamp": TS},
            {"Name": "b", "Value": 2.5, "Quality": 192, "Timestamp": TS},
        ],
        [
            {"Name": "a", "Value": 1, "Quality": 192, "Timestamp": TS},
            {"Name": "b", "Value": 2.5, "Quality": 192, "Timestamp": TS},
        ],
        [
            {"Name": "a", "Value": True, "Quality": 192, "Timestamp": TS},
            {"Name": "b", "Value": 2.5, "Quality": 72, "Timestamp": TS},
        ],
        [
            {"Name": "a", "Value": True, "Quality": 192, "Timestamp": TS, "Error": "driver down"},
            {"Name": "b", "Value": 2.5, "Quality": 72, "Timestamp": "2026-11-24T10:15:31.000Z"},
        ],
        [
            {"Name": "a", "Value": True, "Quality": 192, "Timestamp": TS},
            {"Name": "b", "Value": 2.5, "Quality": 72, "Timestamp": "2026-11-24T10:15:31.000Z"},
        ],
    ]
    with respx.mock(base_url=BASE) as mock:
        mock.post("/WinCC/REST/Tags/ReadMultiple").mock(
            side_effect=[httpx.Response(200, json={"Tags": a}) for a in answers]
        )
        async with open_client(cfg()) as client:
            r = [await client.read(["a", "b"]) for _ in answers]
    assert r[1]["a"] is r[0]["a"] and r[1]["b"] is r[0]["b"]
    assert r[2]["a"] is not r[1]["a"] and r[2]["a"].value is True  # 1 -> true is a change although 1 == True
    assert r[2]["b"] is not r[1]["b"] and r[2]["b"].quality == 72
    assert isinstance(r[3]["a"], TagError)
    assert r[3]["b"] is not r[2]["b"] and r[3]["b"].timestamp.second == 31
    assert isinstance(r[4]["a"], TagValue) and r[4]["a"] is not r[2]["a"]  # after an error: parsed afresh
    assert r[4]["b"] is r[3]["b"]


async def test_nan_body_still_parses() -> None:
    """orjson refuses NaN, which some servers send; the standard library's parser takes over for that body."""
    body = json.dumps({"Tags": [{"Name": "a", "Value": math.nan, "Quality": 192, "Timestamp": TS}]})  # NaN, bare
    with respx.mock(base_url=BASE) as mock:
        mock.post("/WinCC/REST/Tags/ReadMultiple").mock(return_value=httpx.Response(200, text=body))
        async with open_client(cfg()) as client:
            out = await client.read(["a", "b"])
    assert isinstance(out["a"], TagValue) and out["a"].value != out["a"].value  # NaN


def test_answer_cache_forgets_tags_nobody_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    from bridge.wincc import parse

    clock = [1000.0]
    monkeypatch.setattr(parse.time, "monotonic", lambda: clock[0])
    cache = parse.AnswerCache(keep_s=10)
    tv = TagValue("a", 1, 192, T0)
    cache.put("a", 1, 192, TS, tv)
    cache.put("b", 1, 192, TS, tv)
    clock[0] += 11
    cache.age()  # both become old
    assert cache.lookup("a", 1, 192, TS) is tv  # read again: kept
    clock[0] += 11
    cache.age()  # b was not read for a whole period: gone
    assert cache.lookup("b", 1, 192, TS) is None and cache.lookup("a", 1, 192, TS) is tv and len(cache) == 1


def test_answer_cache_repeats_only_an_exact_answer_and_its_entries_leave_the_collector() -> None:
    import gc

    from bridge.wincc import parse

    cache = parse.AnswerCache()
    tv = TagValue("a", 1, 192, T0)
    cache.put("a", 1, 192, TS, tv)
    assert cache.lookup("a", 1, 192, TS) is tv
    assert cache.lookup("a", 1.0, 192, TS) is None  # another JSON type is another answer
    assert cache.lookup("a", True, 192, TS) is None
    assert cache.lookup("a", 1, 0x48, TS) is None
    assert cache.lookup("a", 1, 192, "2026-11-24T10:15:31.000Z") is None
    assert cache.lookup("b", 1, 192, TS) is None
    # the raw fields are a tuple of JSON scalars: after one collection the collector no longer walks it (the
    # GC pauses at 100,000 tags, bench/README.md); the TagValue beside it stays what the cache answers
    gc.collect()
    assert not gc.is_tracked(cache._new["a"])
    assert cache.lookup("a", 1, 192, TS) is tv
    cache.drop("a")
    assert cache.lookup("a", 1, 192, TS) is None and len(cache) == 0


# -- read one -------------------------------------------------------------------------------------------------


async def test_read_one_endpoint() -> None:
    odd = "System1.Tank 1/Level:ä"
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        many = mock.post("/WinCC/REST/Tags/ReadMultiple").mock(side_effect=read_ok)
        one = mock.get(url=f"{BASE}/api/dp/System1.Tank%201%2FLevel%3A%C3%A4").mock(
            return_value=httpx.Response(200, json={"name": odd, "value": 4.5, "quality": 0x48, "timestamp": TS})
        )
        mock.get("/api/dp/gone").mock(return_value=httpx.Response(404, json={"error": "not found"}))
        mock.get("/api/dp/err").mock(return_value=httpx.Response(200, json={"name": "err", "error": "driver down"}))
        mock.get("/api/dp/code").mock(
            return_value=httpx.Response(
                200, json={"name": "code", "value": 1, "quality": 192, "timestamp": TS, "errorCode": 3}
            )
        )
        mock.get("/api/dp/badq").mock(
            return_value=httpx.Response(200, json={"name": "badq", "value": 1, "quality": "splendid", "timestamp": TS})
        )
        mock.get("/api/dp/down").mock(return_value=httpx.Response(503))
        async with open_client(cfg()) as client:
            out = {n: (await client.read([n]))[n] for n in (odd, "gone", "err", "code", "badq")}
            with pytest.raises(WinCCUnreachable):  # a whole-request failure of the only request is raised
                await client.read(["down"])
        assert one.call_count == 1 and many.call_count == 0
    v = out[odd]
    assert isinstance(v, TagValue) and (v.name, v.value, v.quality) == (odd, 4.5, 0x48)
    assert v.timestamp == datetime(2026, 11, 24, 10, 15, 30, 250000, tzinfo=UTC)
    assert isinstance(out["gone"], TagError) and out["gone"].kind == TagErrorKind.not_found
    assert isinstance(out["err"], TagError) and out["err"].kind == TagErrorKind.item_error
    assert out["err"].reason == "driver down"
    assert isinstance(out["code"], TagError) and out["code"].kind == TagErrorKind.item_error
    assert isinstance(out["badq"], TagError) and out["badq"].kind == TagErrorKind.bad_answer


async def test_read_one_keeps_identity() -> None:
    item = {"name": "a", "value": 1, "quality": 192, "timestamp": TS}
    answers = [
        item,
        dict(item),
        dict(item, error="driver down"),
        dict(item),
        dict(item, value=True),
        dict(item, value=True),
    ]
    with respx.mock(base_url=BASE) as mock:
        route = mock.get("/api/dp/a").mock(side_effect=[httpx.Response(200, json=a) for a in answers])
        mock.get("/api/dp/b").mock(
            side_effect=[httpx.Response(200, json=item), httpx.Response(404), httpx.Response(200, json=item)]
        )
        async with open_client(cfg()) as client:
            r = [(await client.read(["a"]))["a"] for _ in answers]
            b = [(await client.read(["b"]))["b"] for _ in range(3)]
        assert route.call_count == len(answers)
    assert r[1] is r[0]
    assert isinstance(r[2], TagError) and r[2].kind == TagErrorKind.item_error
    assert isinstance(r[3], TagValue) and r[3] is not r[0]  # after an error: parsed afresh
    assert r[4] is not r[3] and r[4].value is True
    assert r[5] is r[4]
    assert isinstance(b[1], TagError) and b[1].kind == TagErrorKind.not_found
    assert isinstance(b[2], TagValue) and b[2] is not b[0]  # the 404 forgot the cached value


async def test_read_item_error_keys() -> None:
    """The contract's item rule in full: a non-empty `Error` or `error`, or a non-zero `errorCode`/`errorcode`,
    spoils that item only, also when its value, quality and timestamp repeat a cached good answer."""
    good = {"Value": 1, "Quality": 192, "Timestamp": TS}
    first = [{"Name": n, **good, "Error": None} for n in "abcdefg"]
    second = [
        {"Name": "a", **good, "Error": None, "error": "driver down"},
        {"Name": "b", **good, "Error": None, "errorCode": 5},
        {"Name": "c", **good, "errorcode": "7"},
        {"Name": "d", **good, "Error": "", "errorcode": 0},
        {"Name": "e", **good, "Error": None, "error": ""},
        {"Name": "f", **good, "Error": None},
        {"Name": "g", **good, "Error": None, "errorCode": "abc"},
    ]
    with respx.mock(base_url=BASE) as mock:
        mock.post("/WinCC/REST/Tags/ReadMultiple").mock(
            side_effect=[httpx.Response(200, json={"Tags": first}), httpx.Response(200, json={"Tags": second})]
        )
        async with open_client(cfg()) as client:
            r1 = await client.read(list("abcdefg"))
            r2 = await client.read(list("abcdefg"))
    assert all(isinstance(v, TagValue) for v in r1.values())
    for n in "abc":
        assert isinstance(r2[n], TagError) and r2[n].kind == TagErrorKind.item_error, n
    assert r2["a"].reason == "driver down" and "5" in r2["b"].reason
    assert r2["d"] is r1["d"] and r2["e"] is r1["e"] and r2["f"] is r1["f"]
    assert isinstance(r2["g"], TagError) and r2["g"].kind == TagErrorKind.bad_answer


# -- the batch memo: unchanged bytes are not parsed again -----------------------------------------------------


def tags_body(items: list[dict], sep: str = ",") -> str:
    return '{"Tags": [' + sep.join(json.dumps(i, separators=(",", ":")) for i in items) + "]}"


def item(name: str, value: object, ts: str = TS, quality: int = 192) -> dict:
    return {"Name": name, "Value": value, "Quality": quality, "Timestamp": ts, "Error": None}


async def read_answers(bodies: list[str], names: list[str]) -> tuple[list[dict], DpClient]:
    with respx.mock(base_url=BASE) as mock:
        mock.post("/WinCC/REST/Tags/ReadMultiple").mock(side_effect=[httpx.Response(200, text=b) for b in bodies])
        client = DpClient(cfg())
        parsed: list[int] = []
        full = client._parse_chunk

        def counting(batch, items):  # how often the whole answer was parsed
            parsed.append(len(items))
            return full(batch, items)

        client._parse_chunk = counting  # type: ignore[method-assign]
        async with client:
            out = [await client.read(names) for _ in bodies]
    client.full_parses = parsed  # type: ignore[attr-defined]
    return out, client


async def test_memo_replays_an_unchanged_answer_without_parsing_it() -> None:
    names = ["a", "b", "c"]
    body = tags_body([item("a", 1.0), item("b", 2), item("c", True)], sep=", ")  # a server that puts spaces
    out, client = await read_answers([body, body, body], names)
    assert client.full_parses == [3]  # only the first answer was parsed as a whole
    assert all(out[2][n] is out[0][n] for n in names)


async def test_memo_parses_only_the_items_that_changed() -> None:
    names = ["a", "b", "c"]
    first = tags_body([item("a", 1.0), item("b", 2), item("c", True)])
    second = tags_body([item("a", 1.0), item("b", 3, "2026-11-24T10:15:31.000Z"), item("c", True)])
    third = tags_body([item("a", 1.0), {"Name": "b", "Error": "driver down"}, item("c", True)])
    out, client = await read_answers([first, second, third], names)
    assert client.full_parses == [3]
    assert out[1]["a"] is out[0]["a"] and out[1]["c"] is out[0]["c"]
    assert out[1]["b"].value == 3 and out[1]["b"].timestamp.second == 31
    assert isinstance(out[2]["b"], TagError) and out[2]["b"].kind == TagErrorKind.item_error
    assert out[2]["a"] is out[0]["a"]


async def test_memo_gives_up_on_anything_unexpected() -> None:
    """Each of these answers defeats the byte split or the order; the full parse must still give the right result."""
    names = ["a", "b"]
    base = tags_body([item("a", 1.0), item("b", "x")])
    tricky = [
        tags_body([item("a", 1.0), item("b", 'a "},{" inside a string')]),  # the separator inside a value
        tags_body([item("b", "x"), item("a", 1.0)]),  # another order
        tags_body([item("a", 1.0)]),  # an item missing
        tags_body([item("a", 1.0), item("b", "x"), item("zz", 9)]),  # an extra item
        json.dumps({"Tags": [{"Name": "a", "Value": math.nan, "Quality": 192, "Timestamp": TS}, item("b", "x")]}),
    ]
    # the NaN answer keeps the byte split: only its changed item is parsed (by the standard library)
    full_parses = [2, 2, 2, 2, 1]
    for body, parses in zip(tricky, full_parses, strict=True):
        out, client = await read_answers([base, body], names)
        expected = json.loads(body.replace("NaN", "null"))["Tags"]
        by_name = {i["Name"]: i for i in expected}
        for n in names:
            if n not in by_name:
                assert isinstance(out[1][n], TagError) and out[1][n].kind == TagErrorKind.bad_answer
            elif by_name[n]["Value"] is None:
                assert out[1][n].value != out[1][n].value  # NaN
            else:
                assert out[1][n].value == by_name[n]["Value"], body
        assert len(client.full_parses) == parses, body


def test_memo_forgets_batches_nobody_asks_for(monkeypatch: pytest.MonkeyPatch) -> None:
    from bridge.wincc import parse

    clock = [1000.0]
    monkeypatch.setattr(parse.time, "monotonic", lambda: clock[0])
    memo = parse.BatchMemo("Name", keep_s=10)
    content = tags_body([item("a", 1)]).encode()
    tv = TagValue("a", 1, 192, T0)
    memo.learn(("a",), content, [item("a", 1)], {"a": tv})
    memo.learn(("b",), tags_body([item("b", 1)]).encode(), [item("b", 1)], {"b": tv})
    clock[0] += 11
    assert memo.replay(("a",), content, lambda n, r: tv)["a"] is tv  # still known, and kept
    clock[0] += 11
    assert memo.replay(("b",), content, lambda n, r: tv) is None  # not asked for in a whole period: gone
    assert len(memo) == 1
