"""restservice dialect against respx: every endpoint, batched writes, archive mapping, alarm states."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx

from bridge.config import WinCCConfig
from bridge.wincc import WinCCClient, open_client
from bridge.wincc.errors import WinCCBadAnswer, WinCCNotFound, WinCCUnauthorized, WinCCUnreachable
from bridge.wincc.models import AlarmState, DataType, Folder, TagError, TagErrorKind, TagInfo, TagValue, WriteError
from bridge.wincc.parse import format_ts, parse_ts

BASE = "https://wincc.test:34568/WinCCRestService"
PASSWORD = "rest-Pa55word!"
TS = "2026-11-24T10:15:30.250Z"
T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def cfg(monkeypatch: pytest.MonkeyPatch | None = None, **kw: object) -> WinCCConfig:
    base: dict[str, object] = {"url": BASE, "dialect": "restservice", "retry": {"attempts": 2, "backoff_s": 0}}
    if monkeypatch is not None:
        monkeypatch.setenv("WINCC_REST_PW", PASSWORD)
        base["auth"] = {"mode": "basic", "username": "winccuser", "password_env": "WINCC_REST_PW"}
    base |= kw
    return WinCCConfig.model_validate(base)


def query(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(str(request.url)).query, keep_blank_values=True).items()}


def values_ok(request: httpx.Request) -> httpx.Response:
    names = json.loads(request.content)["variableNames"]
    return httpx.Response(
        200,
        json=[
            {"variableName": n, "value": 7, "dataType": 6, "timestamp": TS, "qualityCode": 128, "errorCode": 0}
            for n in names
        ],
    )


def test_protocol_and_dialect() -> None:
    client = open_client(cfg())
    assert isinstance(client, WinCCClient)
    assert client.dialect == "restservice"


async def test_browse_folders_variables_archives(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    variables = [
        {
            "name": "Tank1_Level",
            "dataType": 9,
            "group": "Tank1",
            "connection": "PLC1",
            "unit": "m",
            "lowLimit": 0,
            "highLimit": 10,
        },
        {"name": "Pump_On", "dataType": 1, "connection": "PLC1"},
        {"name": "Weird", "dataType": 99, "connection": "PLC2", "group": "G"},
        {"name": "Internal", "dataType": 11},
    ]

    def var_pages(request: httpx.Request) -> httpx.Response:
        q = query(request)
        assert q["itemLimit"] == "2"
        start = int(q.get("continuationPoint") or 0)
        nxt = str(start + 2) if start + 2 < len(variables) else None
        return httpx.Response(200, json={"variables": variables[start : start + 2], "continuationPoint": nxt})

    with respx.mock(base_url=BASE) as mock:
        mock.get("/tagManagement/Connections").mock(
            return_value=httpx.Response(200, json={"connections": [{"name": "PLC1"}]})
        )
        mock.get("/tagManagement/Groups").mock(
            return_value=httpx.Response(200, json=[{"name": "Tank1", "connection": "PLC1"}])
        )
        mock.get("/tagManagement/Variables").mock(side_effect=var_pages)
        mock.get("/tagLogging/Archives").mock(return_value=httpx.Response(200, json=[{"name": "Proc Arch"}]))
        mock.get("/tagLogging/Archive/Proc%20Arch/Variables").mock(
            return_value=httpx.Response(200, json={"variables": [{"name": "ArchLevel", "variableName": "Tank1_Level"}]})
        )
        async with open_client(cfg(browse_page_size=2)) as client:
            got = [x async for x in client.browse()]
            got2 = [x async for x in client.browse()]
    assert got == got2
    assert got[0] == Folder(("PLC1",)) and got[1] == Folder(("PLC1", "Tank1"))
    tags = {x.name: x for x in got if isinstance(x, TagInfo)}
    assert tags["Tank1_Level"] == TagInfo(
        name="Tank1_Level",
        data_type=DataType.double,
        folder=("PLC1", "Tank1"),
        display_name="Tank1_Level",
        unit="m",
        low=0.0,
        high=10.0,
        writable=True,
        archived=True,
        archive="Proc Arch",
        archive_tag="ArchLevel",
    )
    assert tags["Pump_On"].data_type == DataType.bool and tags["Pump_On"].folder == ("PLC1",)
    assert tags["Internal"].data_type == DataType.string and tags["Internal"].folder == ()
    assert tags["Weird"].data_type == DataType.double
    # parents before children, also for folders only learnt from a variable
    idx = {(x.path if isinstance(x, Folder) else x.name): i for i, x in enumerate(got)}
    assert idx[("PLC2",)] < idx[("PLC2", "G")] < idx["Weird"]
    # the unknown dataType was logged once per browse... and once in total
    assert sum("Weird" in r.getMessage() for r in caplog.records) == 1


async def test_browse_bad_answer() -> None:
    with respx.mock(base_url=BASE) as mock:
        mock.get("/tagManagement/Connections").mock(return_value=httpx.Response(200, json={"x": 1}))
        async with open_client(cfg()) as client:
            with pytest.raises(WinCCBadAnswer):
                _ = [x async for x in client.browse()]


async def test_read_batches_and_item_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    answer = {
        "values": [
            {"variableName": "a", "value": True, "timestamp": TS, "qualityCode": 192, "errorCode": 0},
            {"variableName": "b", "value": None, "errorCode": 1, "errorDescription": "unknown variable"},
            {"variableName": "c", "errorcode": 5, "errorDescription": "driver"},
            {"variableName": "d", "value": 1, "timestamp": "nope", "qualityCode": 192, "errorCode": 0},
            {"variableName": "e", "value": "txt", "timestamp": TS, "errorCode": 0},
        ]
    }
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/tagManagement/Values").mock(return_value=httpx.Response(200, json=answer))
        async with open_client(cfg(monkeypatch)) as client:
            out = await client.read(["a", "b", "c", "d", "e", "f"])
        assert json.loads(route.calls[0].request.content) == {"variableNames": ["a", "b", "c", "d", "e", "f"]}
        assert route.calls[0].request.headers["Authorization"].startswith("Basic ")
    assert isinstance(out["a"], TagValue) and out["a"].value is True and out["a"].quality == 192
    assert isinstance(out["b"], TagError) and out["b"].kind == TagErrorKind.not_found
    assert isinstance(out["c"], TagError) and out["c"].kind == TagErrorKind.item_error
    assert isinstance(out["d"], TagError) and out["d"].kind == TagErrorKind.bad_answer
    assert isinstance(out["e"], TagValue) and out["e"].quality == 0xC0
    assert isinstance(out["f"], TagError) and out["f"].kind == TagErrorKind.bad_answer


async def test_read_10000_in_20_requests() -> None:
    names = [f"v{i}" for i in range(10_000)]
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/tagManagement/Values").mock(side_effect=values_ok)
        async with open_client(cfg(), batch_size=500) as client:
            out = await client.read(names)
        assert route.call_count == 20
    assert len(out) == 10_000 and all(isinstance(v, TagValue) for v in out.values())


async def test_read_partial_and_total_failure() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if "x" in json.loads(request.content)["variableNames"]:
            return httpx.Response(200, text="garbage")
        return values_ok(request)

    with respx.mock(base_url=BASE) as mock:
        mock.post("/tagManagement/Values").mock(side_effect=handler)
        mock.get("/tagManagement/Value/x").mock(return_value=httpx.Response(200, text="garbage"))
        async with open_client(cfg(), batch_size=1) as client:
            out = await client.read(["a", "x"])
            assert isinstance(out["a"], TagValue)
            assert isinstance(out["x"], TagError) and out["x"].kind == TagErrorKind.bad_answer
            with pytest.raises(WinCCBadAnswer):
                await client.read(["x"])


async def test_write_20_tags_is_one_put() -> None:
    codes = {
        0: None,
        1: WriteError.not_found,
        2: WriteError.type_mismatch,
        3: WriteError.out_of_range,
        4: WriteError.not_writable,
        7: WriteError.forbidden,
        9: WriteError.other,
    }

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        out = []
        for item in body:
            i = int(item["variableName"][1:])
            code = list(codes)[i % len(codes)]
            out.append({"variableName": item["variableName"], "errorCode": code, "errorDescription": f"e{code}"})
        return httpx.Response(200, json=out)

    items = {f"w{i}": i for i in range(20)}
    with respx.mock(base_url=BASE) as mock:
        route = mock.put("/tagManagement/Values").mock(side_effect=handler)
        async with open_client(cfg()) as client:
            out = await client.write(items)
        assert route.call_count == 1
        sent = json.loads(route.calls[0].request.content)
        assert sent == [{"variableName": n, "value": v} for n, v in items.items()]
    assert list(out) == list(items)
    for i in range(20):
        expect = list(codes.values())[i % len(codes)]
        assert out[f"w{i}"].error == expect
    assert out["w0"].ok


async def test_write_chunks_and_transport_failures() -> None:
    with respx.mock(base_url=BASE) as mock:
        route = mock.put("/tagManagement/Values").mock(
            side_effect=[httpx.Response(200, json=[{"variableName": "a", "errorCode": 0}]), httpx.ReadTimeout("slow")]
        )
        async with open_client(cfg(), batch_size=2) as client:
            out = await client.write({"a": 1, "b": 2, "c": 3})
        assert route.call_count == 2
    assert out["a"].ok
    assert out["b"].error == WriteError.unreachable  # missing from the answer
    assert out["c"].error == WriteError.timeout


async def test_write_status_errors() -> None:
    with respx.mock(base_url=BASE) as mock:
        mock.put("/tagManagement/Values").mock(
            side_effect=[httpx.Response(403), httpx.Response(500), httpx.Response(200, json={"x": 1})]
        )
        async with open_client(cfg()) as client:
            assert (await client.write({"a": 1, "b": 2}))["a"].error == WriteError.forbidden
            assert (await client.write({"a": 1, "b": 2}))["b"].error == WriteError.unreachable
            assert (await client.write({"a": 1, "b": 2}))["a"].error == WriteError.unreachable


def archive_handler(values: list[tuple[datetime, float]], cap: int):
    requests: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        requests.append(body)
        var = body["archives"][0]["variables"][0]
        start, end = parse_ts(var["timeFrom"]), parse_ts(var["timeTo"])
        sel = [(t, v) for t, v in values if start <= t <= end][: min(var["maxValues"], cap)]
        return httpx.Response(
            200,
            json={
                "archives": [
                    {
                        "name": body["archives"][0]["name"],
                        "variables": [
                            {
                                "name": var["name"],
                                "values": [{"value": v, "timestamp": format_ts(t), "qualityCode": 192} for t, v in sel],
                            }
                        ],
                    }
                ]
            },
        )

    return handler, requests


async def test_archive_by_tag_info_and_paging() -> None:
    values = [(T0 + timedelta(seconds=i // 2), float(i)) for i in range(11)]
    handler, requests = archive_handler(values, cap=3)
    tag = TagInfo("Tank1_Level", DataType.double, archived=True, archive="PA", archive_tag="ArchLevel")
    with respx.mock(base_url=BASE) as mock:
        mock.post("/tagLogging/Values").mock(side_effect=handler)
        async with open_client(cfg()) as client:
            pages = [p async for p in client.archive(tag, T0, T0 + timedelta(minutes=1), page_size=3)]
    assert [v.value for p in pages for v in p] == [float(i) for i in range(11)]
    first = requests[0]["archives"][0]
    assert first["name"] == "PA"
    assert first["variables"][0] == {
        "name": "ArchLevel",
        "timeFrom": "2026-11-24T10:00:00.000Z",
        "timeTo": "2026-11-24T10:01:00.000Z",
        "maxValues": 3,
    }


async def test_archive_by_name_looks_up_archive() -> None:
    handler, requests = archive_handler([(T0, 1.0)], cap=100)
    with respx.mock(base_url=BASE) as mock:
        mock.get("/tagLogging/Archives").mock(return_value=httpx.Response(200, json={"archives": [{"name": "PA"}]}))
        mock.get("/tagLogging/Archive/PA/Variables").mock(
            return_value=httpx.Response(200, json=[{"name": "ArchLevel", "variableName": "Tank1_Level"}])
        )
        mock.post("/tagLogging/Values").mock(side_effect=handler)
        async with open_client(cfg()) as client:
            pages = [p async for p in client.archive("Tank1_Level", T0, T0)]
            with pytest.raises(WinCCNotFound):
                _ = [p async for p in client.archive("NotLogged", T0, T0)]
    assert [v.value for p in pages for v in p] == [1.0]
    assert requests[0]["archives"][0]["variables"][0]["name"] == "ArchLevel"


MSG = {
    "messageNumber": 12,
    "instanceId": 3001,
    "state": 1,
    "stateText": "came in",
    "text": "Level high",
    "class": "Alarm",
    "priority": 3,
    "timestamp": TS,
    "variableName": "Tank1_Level",
}


async def test_alarms_and_states() -> None:
    msgs = [MSG | {"state": s} for s in (1, 2, 3, 4)] + [MSG | {"state": 77}]
    with respx.mock(base_url=BASE) as mock:
        active = mock.get("/alarmLogging/MessageList").mock(return_value=httpx.Response(200, json={"messages": msgs}))
        hist = mock.get("/alarmLogging/ShortTermArchive").mock(return_value=httpx.Response(200, json=msgs[:2]))
        async with open_client(cfg()) as client:
            alarms = await client.active_alarms()
            history = await client.alarm_history(T0, T0 + timedelta(hours=1), limit=50)
        assert "maxValues" in query(active.calls[0].request)
        assert query(hist.calls[0].request) == {
            "maxValues": "50",
            "timeFrom": "2026-11-24T10:00:00.000Z",
            "timeTo": "2026-11-24T11:00:00.000Z",
        }
    assert [(a.state, a.acknowledged) for a in alarms] == [
        (AlarmState.came, False),
        (AlarmState.went, False),
        (AlarmState.came, True),
        (AlarmState.went, True),
    ]
    assert alarms[0].id == "3001" and alarms[0].tag == "Tank1_Level" and alarms[0].priority == 3
    assert alarms[0].extra["messageNumber"] == 12
    assert len(history) == 2


async def test_acknowledge_not_configured() -> None:
    async with open_client(cfg()) as client:
        with pytest.raises(NotImplementedError):
            await client.acknowledge("1", "c", "u")


async def test_acknowledge_configured_template() -> None:
    ack = {"method": "PUT", "path": "/scripts/ack/{id}", "body": {"alarm": "{id}", "note": "{user}: {comment}", "n": 1}}
    with respx.mock(base_url=BASE) as mock:
        route = mock.put("/scripts/ack/3001").mock(return_value=httpx.Response(200, json={}))
        mock.put("/scripts/ack/9").mock(return_value=httpx.Response(404))
        async with open_client(cfg(acknowledge=ack)) as client:
            await client.acknowledge("3001", "seen", "op")
            with pytest.raises(WinCCNotFound):
                await client.acknowledge("9", "", "")
        assert json.loads(route.calls[0].request.content) == {"alarm": "3001", "note": "op: seen", "n": 1}


async def test_errors_carry_prefix_path_not_password(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with respx.mock(base_url=BASE) as mock:
        mock.post("/tagManagement/Values").mock(return_value=httpx.Response(401))
        mock.get("/alarmLogging/MessageList").mock(return_value=httpx.Response(503))
        async with open_client(cfg(monkeypatch)) as client:
            with pytest.raises(WinCCUnauthorized) as e1:
                await client.read(["a", "b"])
            with pytest.raises(WinCCUnreachable) as e2:
                await client.active_alarms()
    for e in (e1.value, e2.value):
        assert "/WinCCRestService/" in str(e)
        assert PASSWORD not in str(e) and PASSWORD not in repr(e)
        assert "maxValues" not in str(e)  # no query string in messages
    assert PASSWORD not in caplog.text


async def test_browse_without_groups_endpoint() -> None:
    with respx.mock(base_url=BASE) as mock:
        mock.get("/tagManagement/Connections").mock(return_value=httpx.Response(404))
        mock.get("/tagManagement/Groups").mock(return_value=httpx.Response(404))
        mock.get("/tagLogging/Archives").mock(return_value=httpx.Response(404))
        mock.get("/tagManagement/Variables").mock(
            return_value=httpx.Response(200, json=[{"name": "V", "dataType": 4, "connection": "C", "group": "G"}])
        )
        async with open_client(cfg()) as client:
            got = [x async for x in client.browse()]
    assert got[:2] == [Folder(("C",)), Folder(("C", "G"))]
    assert isinstance(got[2], TagInfo) and got[2].data_type == DataType.int16 and not got[2].archived


@pytest.mark.parametrize("path", ["read one", "read many"])
async def test_unchanged_values_come_back_as_the_same_object(path: str) -> None:
    """Both read paths keep the identity rule the sync engine relies on: a repeated item is the same TagValue."""
    item = {
        "variableName": "a",
        "value": 3,
        "dataType": 6,
        "timestamp": "2026-11-24T10:15:30.250Z",
        "qualityCode": 192,
        "errorCode": 0,
        "errorDescription": "",
    }
    answers = [
        item,
        dict(item),
        dict(item, errorCode=1),
        dict(item),
        dict(item, value=4),
        dict(item, value=4, error="driver down"),
        dict(item, value=4),
        dict(item, value=4, errorCode="0"),
    ]
    with respx.mock(base_url=BASE) as mock:
        if path == "read one":
            mock.get("/tagManagement/Value/a").mock(side_effect=[httpx.Response(200, json=a) for a in answers])
            names = ["a"]
        else:
            mock.post("/tagManagement/Values").mock(side_effect=[httpx.Response(200, json=[a]) for a in answers])
            names = ["a", "b"]
        async with open_client(cfg()) as client:
            r = [(await client.read(names))["a"] for _ in answers]
    assert r[1] is r[0]
    assert isinstance(r[2], TagError) and r[2].kind == TagErrorKind.not_found
    assert isinstance(r[3], TagValue) and r[3] is not r[0]
    assert r[4].value == 4 and r[4] is not r[3]
    assert isinstance(r[5], TagError) and r[5].kind == TagErrorKind.item_error  # same raw fields, but an error
    assert isinstance(r[6], TagValue) and r[6] is not r[4]
    assert r[7] is r[6]  # errorCode "0" is no error


# -- read one / write one ----------------------------------------------------------------------------------------


async def test_read_one_endpoint_and_not_found_both_ways() -> None:
    odd = "Tank 1/Level:ä"
    ok = {
        "variableName": odd,
        "value": 2.5,
        "dataType": 9,
        "timestamp": TS,
        "qualityCode": 72,
        "errorCode": 0,
        "errorDescription": "",
    }
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        many = mock.post("/tagManagement/Values").mock(side_effect=values_ok)
        one = mock.get(url=f"{BASE}/tagManagement/Value/Tank%201%2FLevel%3A%C3%A4").mock(
            return_value=httpx.Response(200, json=ok)
        )
        mock.get("/tagManagement/Value/code1").mock(
            return_value=httpx.Response(
                200,
                json={"variableName": "code1", "value": None, "errorCode": 1, "errorDescription": "unknown variable"},
            )
        )
        mock.get("/tagManagement/Value/http404").mock(return_value=httpx.Response(404))
        mock.get("/tagManagement/Value/code5").mock(return_value=httpx.Response(200, json={"errorcode": 5}))
        mock.get("/tagManagement/Value/text").mock(
            return_value=httpx.Response(200, json={"value": 1, "timestamp": TS, "errorCode": 0, "error": "driver down"})
        )
        mock.get("/tagManagement/Value/badts").mock(
            return_value=httpx.Response(200, json={"value": 1, "timestamp": "noon", "errorCode": 0})
        )
        mock.get("/tagManagement/Value/down").mock(return_value=httpx.Response(503))
        async with open_client(cfg()) as client:
            out = {n: (await client.read([n]))[n] for n in (odd, "code1", "http404", "code5", "text", "badts")}
            with pytest.raises(WinCCUnreachable):  # a whole-request failure of the only request is raised
                await client.read(["down"])
        assert one.call_count == 1 and many.call_count == 0
    v = out[odd]
    assert isinstance(v, TagValue) and (v.name, v.value, v.quality) == (odd, 2.5, 72)
    assert v.timestamp == datetime(2026, 11, 24, 10, 15, 30, 250000, tzinfo=UTC)
    assert isinstance(out["code1"], TagError) and out["code1"].kind == TagErrorKind.not_found
    assert "unknown variable" in out["code1"].reason
    assert isinstance(out["http404"], TagError) and out["http404"].kind == TagErrorKind.not_found
    assert isinstance(out["code5"], TagError) and out["code5"].kind == TagErrorKind.item_error
    assert isinstance(out["text"], TagError) and out["text"].reason == "driver down"
    assert isinstance(out["badts"], TagError) and out["badts"].kind == TagErrorKind.bad_answer


async def test_write_one_endpoint_and_mapping() -> None:
    answers = {
        "ok": httpx.Response(200, json={"errorcode": 0}),
        "ok2": httpx.Response(200, json={"errorCode": 0, "errorDescription": ""}),
        "c1": httpx.Response(200, json={"errorcode": 1, "errorDescription": "unknown variable"}),
        "c2": httpx.Response(200, json={"errorcode": 2}),
        "c3": httpx.Response(200, json={"errorCode": 3}),
        "c4": httpx.Response(200, json={"errorcode": 4}),
        "c7": httpx.Response(200, json={"errorcode": 7}),
        "c9": httpx.Response(200, json={"errorcode": 9, "errorDescription": "odd"}),
        "text": httpx.Response(200, json={"errorcode": 0, "error": "refused"}),
        "badcode": httpx.Response(200, json={"errorcode": "abc"}),
        "nocode": httpx.Response(200, json={}),
        "notjson": httpx.Response(200, text="<html>"),
        "h404": httpx.Response(404),
        "h403": httpx.Response(403),
        "h400": httpx.Response(400),
        "h500": httpx.Response(500),
    }
    expect = {
        "ok": None,
        "ok2": None,
        "c1": WriteError.not_found,
        "c2": WriteError.type_mismatch,
        "c3": WriteError.out_of_range,
        "c4": WriteError.not_writable,
        "c7": WriteError.forbidden,
        "c9": WriteError.other,
        "text": WriteError.other,
        "badcode": WriteError.unreachable,
        "nocode": WriteError.unreachable,
        "notjson": WriteError.unreachable,
        "h404": WriteError.not_found,
        "h403": WriteError.forbidden,
        "h400": WriteError.invalid,
        "h500": WriteError.unreachable,
        "slow": WriteError.timeout,
    }
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        many = mock.put("/tagManagement/Values").mock(return_value=httpx.Response(200, json=[]))
        routes = {n: mock.put(f"/tagManagement/Value/{n}").mock(return_value=r) for n, r in answers.items()}
        mock.put("/tagManagement/Value/slow").mock(side_effect=httpx.ReadTimeout("slow"))
        dt = mock.put("/tagManagement/Value/d").mock(return_value=httpx.Response(200, json={"errorcode": 0}))
        async with open_client(cfg()) as client:
            out = {n: (await client.write({n: 5}))[n] for n in expect}
            assert (await client.write({"d": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)}))["d"].ok
        assert many.call_count == 0
        assert all(r.call_count == 1 for r in routes.values())  # never retried, not even the 500
        assert json.loads(routes["ok"].calls[0].request.content) == {"value": 5}
        assert json.loads(dt.calls[0].request.content) == {"value": "2026-01-02T03:04:05.000Z"}
    assert {n: r.error for n, r in out.items()} == expect
    assert out["ok"].value == 5
    assert "odd" in out["c9"].reason and "refused" in out["text"].reason


async def test_write_many_item_error_text() -> None:
    answer = [
        {"variableName": "a", "errorCode": 0},
        {"variableName": "b", "errorCode": 0, "error": "locked"},
        {"variableName": "c", "errorcode": True},
    ]
    with respx.mock(base_url=BASE) as mock:
        mock.put("/tagManagement/Values").mock(return_value=httpx.Response(200, json=answer))
        async with open_client(cfg()) as client:
            out = await client.write({"a": 1, "b": 2, "c": 3})
    assert out["a"].ok
    assert out["b"].error == WriteError.other and "locked" in out["b"].reason
    assert out["c"].error == WriteError.unreachable


# -- item errors and wrong types in a batch ------------------------------------------------------------------------


async def test_read_item_error_keys() -> None:
    """A non-empty `error` or a non-zero `errorCode`/`errorcode` spoils that item only, on the cached path too."""
    good = {"value": 1, "timestamp": TS, "qualityCode": 192}
    first = [{"variableName": n, **good, "errorCode": 0} for n in "abcde"]
    second = [
        {"variableName": "a", **good, "errorCode": 0, "error": "driver down"},
        {"variableName": "b", **good, "errorcode": 12, "errorDescription": "channel"},
        {"variableName": "c", **good, "errorCode": 0, "error": ""},
        {"variableName": "d", **good, "errorcode": 0, "error": None},
        {"variableName": "e", **good, "errorCode": 0},
    ]
    with respx.mock(base_url=BASE) as mock:
        mock.post("/tagManagement/Values").mock(
            side_effect=[httpx.Response(200, json=first), httpx.Response(200, json=second)]
        )
        async with open_client(cfg()) as client:
            r1 = await client.read(list("abcde"))
            r2 = await client.read(list("abcde"))
    assert all(isinstance(v, TagValue) for v in r1.values())
    assert isinstance(r2["a"], TagError) and r2["a"].kind == TagErrorKind.item_error and "driver down" in r2["a"].reason
    assert isinstance(r2["b"], TagError) and r2["b"].kind == TagErrorKind.item_error and "12" in r2["b"].reason
    assert r2["c"] is r1["c"] and r2["d"] is r1["d"] and r2["e"] is r1["e"]


async def test_read_wrong_types_in_items() -> None:
    names = [
        "n0",
        "n1",
        "n2",
        "str_code",
        "bool_code",
        "float_code",
        "ts_num",
        "ts_text",
        "ts_none",
        "q_bad",
        "good",
        "list_code",
    ]
    ok = {"value": 1, "timestamp": TS, "qualityCode": 192, "errorCode": 0}
    answer = [
        "junk",  # not an object: the tag in its position (n0) gets the error
        {"variableName": 5, **ok},  # n1
        {"variableName": None, **ok},  # n2
        {"variableName": "str_code", **ok, "errorCode": "abc"},
        {"variableName": "bool_code", **ok, "errorCode": True},
        {"variableName": "float_code", **ok, "errorCode": 1.5},
        {"variableName": "ts_num", **ok, "timestamp": 1732443330},
        {"variableName": "ts_text", **ok, "timestamp": "half past ten"},
        {"variableName": "ts_none", **ok, "timestamp": None},
        {"variableName": "q_bad", **ok, "qualityCode": {"q": 1}},
        {"variableName": "good", **ok},
        {"variableName": "list_code", **ok, "errorCode": [0]},
        7,  # past the end of the batch: ignored
    ]
    with respx.mock(base_url=BASE) as mock:
        mock.post("/tagManagement/Values").mock(return_value=httpx.Response(200, json=answer))
        async with open_client(cfg()) as client:
            out = await client.read(names)
    assert list(out) == names
    bad = {n: v for n, v in out.items() if n != "good"}
    assert all(isinstance(v, TagError) and v.kind == TagErrorKind.bad_answer for v in bad.values()), bad
    assert isinstance(out["good"], TagValue) and out["good"].value == 1


async def test_memo_replays_bare_array_answers_and_parses_only_changes() -> None:
    def var(name: str, value: object) -> dict:
        return {
            "variableName": name,
            "value": value,
            "dataType": 6,
            "timestamp": "2026-11-24T10:15:30.250Z",
            "qualityCode": 192,
            "errorCode": 0,
            "errorDescription": "",
        }

    bodies = [[var("a", 1), var("b", 2)], [var("a", 1), var("b", 2)], [var("a", 1), var("b", 5)]]
    with respx.mock(base_url=BASE) as mock:
        mock.post("/tagManagement/Values").mock(side_effect=[httpx.Response(200, json=b) for b in bodies])
        async with open_client(cfg()) as client:
            full = client._parse_chunk
            parsed: list[int] = []
            client._parse_chunk = lambda batch, items: parsed.append(1) or full(batch, items)  # type: ignore[method-assign]
            out = [await client.read(["a", "b"]) for _ in bodies]
    assert parsed == [1]
    assert out[1]["a"] is out[0]["a"] and out[1]["b"] is out[0]["b"]
    assert out[2]["a"] is out[0]["a"] and out[2]["b"].value == 5
