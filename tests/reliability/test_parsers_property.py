"""Property-based tests (hypothesis, bounded) of everything that turns WinCC's answers into values and UA values
into WinCC's: whatever WinCC sends, the REST client returns a typed value or raises a WinCCError (never another
exception); quality and write outcomes map to the StatusCodes of the documented table; a written value is sent only
if it converts without loss, and converts back to itself.

The REST clients run against httpx.MockTransport answering with generated bodies (any JSON, JSON shaped like the
contract with wrong field types, and bytes that are not JSON), through the real Transport and dialect code.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from asyncua import ua
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.config import WinCCConfig
from bridge.opcua.model.status import quality_to_status, write_error_to_status
from bridge.opcua.model.types import VARIANT_TYPES, OutOfRange, from_wincc, to_wincc
from bridge.wincc.dp import DpClient
from bridge.wincc.errors import WinCCError
from bridge.wincc.models import (
    Alarm,
    ArchiveValue,
    DataType,
    Folder,
    TagError,
    TagInfo,
    TagValue,
    WriteError,
)
from bridge.wincc.parse import (
    BatchMemo,
    dumps,
    item_bytes,
    item_error,
    loads,
    parse_batch,
    parse_ts,
    tag_value,
)
from bridge.wincc.restservice import RestServiceClient

S = ua.StatusCodes
VT = ua.VariantType
# bounded: the whole module runs in seconds on a shared 2-core machine; the REST round trip gets the most examples
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
WIRE = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---- generated WinCC answers ------------------------------------------------------------------------------------
# the contract's field names, so generated objects often look like real answers with the wrong things inside
FIELDS = [
    "Tags",
    "Name",
    "Value",
    "Quality",
    "Timestamp",
    "Error",
    "error",
    "name",
    "value",
    "quality",
    "timestamp",
    "variableName",
    "qualityCode",
    "errorCode",
    "errorcode",
    "errorDescription",
    "dataType",
    "items",
    "kind",
    "type",
    "continuation",
    "continuationPoint",
    "variables",
    "alerts",
    "messages",
    "values",
    "id",
    "state",
    "acknowledged",
    "token",
    "expiresIn",
    "groups",
    "connections",
    "connection",
    "group",
    "archives",
]
NAMES = ["System1.Tank1.Level", "System1.Counters.Batch", "Tank1_Level", "Counters_Batch"]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(NAMES),
    st.sampled_from(
        ["2026-12-01T10:00:00Z", "2026-12-01T10:00:00.123+02:00", "not a time", "", "good", "bad", "0xC0", "192", "NaN"]
    ),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=6),
        st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=8)), inner, max_size=6),
    ),
    max_leaves=8,
)
items = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6)
shaped = st.one_of(
    st.builds(lambda xs: {"Tags": xs}, st.lists(items, max_size=6)),
    st.lists(items, max_size=6),
    st.builds(lambda xs, c: {"items": xs, "continuation": c}, st.lists(items, max_size=6), scalars),
    st.builds(lambda xs: {"alerts": xs, "messages": xs, "values": xs}, st.lists(items, max_size=6)),
    st.builds(lambda xs: {"variables": xs, "continuationPoint": None}, st.lists(items, max_size=6)),
)
bodies = st.one_of(
    st.builds(dumps, st.one_of(json_values, shaped)),
    st.binary(max_size=64),
    st.sampled_from([b"", b"[", b'{"Tags": [', b"NaN", b"[NaN, Infinity]", b"\xff\xfe", b"<html>"]),
)
statuses = st.sampled_from([200, 200, 200, 201, 204, 400, 401, 403, 404, 409, 429, 500, 503])


def _config(dialect: str) -> WinCCConfig:
    return WinCCConfig(
        url="http://wincc.test" + ("/WinCCRestService" if dialect == "restservice" else ""),
        dialect=dialect,
        retry={"attempts": 1, "backoff_s": 0, "max_backoff_s": 0.01},
    )


def _client(dialect: str, answer: Callable[[httpx.Request], httpx.Response]) -> DpClient | RestServiceClient:
    from bridge.wincc.transport import Transport

    config = _config(dialect)
    transport = Transport(config, engine=httpx.MockTransport(answer))
    return DpClient(config, transport) if dialect == "dp" else RestServiceClient(config, transport)


async def _call(dialect: str, body: bytes, status: int, op: str) -> Any:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers={"Content-Type": "application/json"})

    client = _client(dialect, answer)
    try:
        if op == "read_many":
            return await client.read(NAMES[:2] if dialect == "dp" else NAMES[2:])
        if op == "read_one":
            return await client.read(NAMES[:1] if dialect == "dp" else NAMES[2:3])
        if op == "write":
            return await client.write({NAMES[0]: 1.5, NAMES[1]: 2} if dialect == "dp" else {NAMES[2]: 1.5, NAMES[3]: 2})
        if op == "alarms":
            return await client.active_alarms()
        if op == "history":
            now = datetime.now(UTC)
            return await client.alarm_history(now - timedelta(hours=1), now)
        if op == "browse":
            return [item async for item in _bounded(client.browse(), 50)]
        if op == "archive":
            tag = TagInfo(
                name=NAMES[0] if dialect == "dp" else NAMES[2],
                data_type=DataType.double,
                folder=(),
                display_name="x",
                archived=True,
            )
            now = datetime.now(UTC)
            return [page async for page in _bounded(client.archive(tag, now - timedelta(hours=1), now), 5)]
        raise AssertionError(op)
    finally:
        await client.aclose()


async def _bounded(it: Any, n: int) -> Any:
    """A generated answer may repeat a continuation forever in ways a guard cannot tell from paging: take n."""
    count = 0
    async for x in it:
        yield x
        count += 1
        if count >= n:
            return


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


OPS = ["read_many", "read_one", "write", "alarms", "history", "browse", "archive"]


def _check_result(op: str, result: Any) -> None:
    if op.startswith("read"):
        assert isinstance(result, dict) and result
        assert all(isinstance(v, (TagValue, TagError)) for v in result.values())
        for v in result.values():
            if isinstance(v, TagValue):
                assert isinstance(v.quality, int) and 0 <= v.quality <= 255 and v.timestamp.tzinfo is not None
    elif op == "write":
        assert len(result) == 2 and all(r.error is None or isinstance(r.error, WriteError) for r in result.values())
    elif op in ("alarms", "history"):
        assert all(isinstance(a, Alarm) for a in result)
    elif op == "browse":
        assert all(isinstance(i, (Folder, TagInfo)) for i in result)
    elif op == "archive":
        assert all(isinstance(v, ArchiveValue) for page in result for v in page)


@WIRE
@given(dialect=st.sampled_from(["dp", "restservice"]), op=st.sampled_from(OPS), body=bodies, status=statuses)
def test_any_answer_is_a_typed_value_or_a_wincc_error(dialect: str, op: str, body: bytes, status: int) -> None:
    try:
        result = _run(_call(dialect, body, status, op))
    except WinCCError:
        return
    _check_result(op, result)


# ---- the parsers underneath, with wider inputs than JSON over HTTP carries -----------------------------------------
wide_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30)),
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(st.sampled_from(FIELDS), inner, max_size=5)),
    max_leaves=8,
)


@PROPERTY
@given(
    batch=st.lists(st.sampled_from(NAMES + ["x", ""]), min_size=1, max_size=5, unique=True),
    raw_items=st.lists(st.one_of(items, wide_json), max_size=7),
    key=st.sampled_from(["Name", "variableName"]),
)
def test_parse_batch_answers_every_tag_of_the_batch_and_nothing_else(batch, raw_items, key) -> None:
    def parse_item(name: str, raw: dict[str, Any]) -> TagValue | TagError:
        error = item_error(name, raw, ("Error", "error"))
        return error or tag_value(name, raw.get("Value"), raw.get("Quality"), raw.get("Timestamp"))

    out = parse_batch(batch, raw_items, key, parse_item)
    assert set(out) == set(batch)
    assert all(isinstance(v, (TagValue, TagError)) and v.name == n for n, v in out.items())


@PROPERTY
@given(value=wide_json, quality=wide_json, timestamp=wide_json)
def test_tag_value_never_raises(value, quality, timestamp) -> None:
    assert isinstance(tag_value("t", value, quality, timestamp), (TagValue, TagError))


@PROPERTY
@given(raw=st.dictionaries(st.sampled_from(FIELDS), wide_json, max_size=6))
def test_item_error_never_raises(raw) -> None:
    result = item_error("t", raw, ("Error", "error"), not_found_code=1)
    assert result is None or isinstance(result, TagError)


@PROPERTY
@given(raw=wide_json)
def test_parse_ts_gives_aware_utc_or_value_error(raw) -> None:
    try:
        ts = parse_ts(raw)
    except ValueError:
        return
    assert ts.tzinfo is not None and ts.utcoffset() == timedelta(0)


@PROPERTY
@given(content=st.one_of(st.binary(max_size=80), st.builds(dumps, st.lists(items, max_size=4))))
def test_loads_and_item_splitting_never_raise_anything_unexpected(content: bytes) -> None:
    try:
        loads(content)
    except (ValueError, UnicodeDecodeError):
        pass
    parts = item_bytes(content)
    assert parts is None or all(isinstance(p, bytes) for p in parts)
    memo = BatchMemo("Name")
    memo.learn(
        ("a", "b"),
        b'[{"Name":"a"},{"Name":"b"}]',
        [{"Name": "a"}, {"Name": "b"}],
        {"a": TagError("a", "x"), "b": TagError("b", "x")},
    )
    replayed = memo.replay(("a", "b"), content, lambda n, raw: TagError(n, "changed"))
    assert replayed is None or set(replayed) == {"a", "b"}


# ---- quality and write outcome -> StatusCode ------------------------------------------------------------------------
@PROPERTY
@given(quality=st.integers(min_value=-(2**20), max_value=2**20))
def test_quality_maps_to_the_documented_severity(quality: int) -> None:
    code = quality_to_status(quality)
    q = quality & 0xFF
    if q >= 0xC0 or q >= 0x80:
        assert code.is_good()
    elif q >= 0x40:
        assert code.is_uncertain()
    else:
        assert code.is_bad()
    assert code.value & 0x300 == (q & 0x03) << 8  # the limit bits travel
    sub = {
        0x44: S.UncertainLastUsableValue,
        0x50: S.UncertainSensorNotAccurate,
        0x08: S.BadNotConnected,
        0x0C: S.BadDeviceFailure,
        0x10: S.BadSensorFailure,
        0x18: S.BadCommunicationError,
        0x1C: S.BadOutOfService,
    }.get(q & 0xFC)
    if sub is not None:
        assert code.value & 0xFFFF0000 == sub


@PROPERTY
@given(error=st.one_of(st.none(), st.sampled_from(list(WriteError))), writable=st.booleans())
def test_write_outcomes_map_to_the_documented_codes(error: WriteError | None, writable: bool) -> None:
    code = write_error_to_status(error, tag_writable=writable)
    assert code.is_good() == (error is None)
    expected = {
        WriteError.type_mismatch: S.BadTypeMismatch,
        WriteError.out_of_range: S.BadOutOfRange,
        WriteError.not_found: S.BadNodeIdUnknown,
        WriteError.timeout: S.BadTimeout,
        WriteError.unreachable: S.BadCommunicationError,
        WriteError.forbidden: S.BadUserAccessDenied if writable else S.BadNotWritable,
    }
    if error in expected:
        assert code.value == expected[error]


# ---- write conversions ------------------------------------------------------------------------------------------
variants = st.one_of(
    st.builds(lambda v: ua.Variant(v, VT.Boolean), st.booleans()),
    *[
        st.builds(lambda v, t=t: ua.Variant(v, t), st.integers(min_value=lo, max_value=hi))
        for t, lo, hi in [
            (VT.SByte, -128, 127),
            (VT.Byte, 0, 255),
            (VT.Int16, -(2**15), 2**15 - 1),
            (VT.UInt16, 0, 2**16 - 1),
            (VT.Int32, -(2**31), 2**31 - 1),
            (VT.UInt32, 0, 2**32 - 1),
            (VT.Int64, -(2**63), 2**63 - 1),
            (VT.UInt64, 0, 2**64 - 1),
        ]
    ],
    st.builds(lambda v: ua.Variant(v, VT.Double), st.floats()),
    st.builds(lambda v: ua.Variant(v, VT.Float), st.floats(width=32)),
    st.builds(lambda v: ua.Variant(v, VT.String), st.text(max_size=20)),
    st.builds(
        lambda v: ua.Variant(v, VT.DateTime),
        st.datetimes(min_value=datetime(1601, 1, 2), max_value=datetime(9998, 12, 31), timezones=st.just(UTC)),
    ),
    st.builds(lambda v: ua.Variant(v, VT.Int32), st.lists(st.integers(0, 9), min_size=1, max_size=3)),
)


@PROPERTY
@given(data_type=st.sampled_from(list(DataType)), variant=variants)
def test_a_written_value_converts_without_loss_or_is_refused(data_type: DataType, variant: ua.Variant) -> None:
    try:
        sent = to_wincc(data_type, variant)
    except (TypeError, OutOfRange):  # refused: BadTypeMismatch, or BadOutOfRange for the right family not fitting
        return
    dumps(sent)  # it travels as JSON
    back = from_wincc(data_type, sent)
    value = variant.Value
    if data_type is DataType.datetime:
        assert abs(back - value) < timedelta(milliseconds=1)
    elif isinstance(back, float) and math.isnan(back):
        assert math.isnan(value)
    else:
        assert back == value
        assert isinstance(back, bool) == isinstance(value, bool)


@PROPERTY
@given(data_type=st.sampled_from(list(DataType)), raw=wide_json)
def test_a_read_value_converts_or_fails_with_value_or_type_error(data_type: DataType, raw: Any) -> None:
    try:
        value = from_wincc(data_type, raw)
    except (ValueError, TypeError):
        return  # the engine serves the value as sent (json_variant_type) or marks the tag BadTypeMismatch
    expected = {VT.Boolean: bool, VT.String: str, VT.DateTime: datetime, VT.Float: float, VT.Double: float}
    assert isinstance(value, expected.get(VARIANT_TYPES[data_type], int))


def test_the_harness_reads_valid_answers_as_values() -> None:
    """The generated-answer test above can fail: a valid answer through the same harness gives values."""
    ts = "2026-12-01T10:00:00.000Z"
    dp = dumps({"Tags": [{"Name": n, "Value": 1.5, "Quality": 192, "Timestamp": ts, "Error": None} for n in NAMES[:2]]})
    rs = dumps(
        [{"variableName": n, "value": 1.5, "qualityCode": 192, "timestamp": ts, "errorCode": 0} for n in NAMES[2:]]
    )
    for dialect, body in (("dp", dp), ("restservice", rs)):
        result = _run(_call(dialect, body, 200, "read_many"))
        assert [type(v) for v in result.values()] == [TagValue, TagValue], result
        assert {v.value for v in result.values()} == {1.5}
