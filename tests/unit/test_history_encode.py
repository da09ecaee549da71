"""Raw history pages packed without DataValue objects (bridge/opcua/history/encode.py) are byte for byte what
asyncua's own encoder makes of the DataValues the service built before, for every tag type, every quality,
values that do not fit their type, and bounds mixed in; in-process readers still get DataValues."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from asyncua import ua
from asyncua.ua.ua_binary import struct_to_binary

from bridge.opcua.history.encode import data_value, encode_history_data
from bridge.wincc.models import ArchiveValue, DataType

T0 = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
RAW = {
    DataType.bool: [True, False, 1, 0, "true", 2, None],
    DataType.int8: [-128, 127, 5.0, 128, "x"],
    DataType.uint8: [0, 255, 256],
    DataType.int16: [-32768, 32767, 40000],
    DataType.uint16: [0, 65535, -1],
    DataType.int32: [-(2**31), 2**31 - 1, 2**31, 1.5, True],
    DataType.uint32: [0, 2**32 - 1],
    DataType.int64: [-(2**63), 2**63 - 1],
    DataType.uint64: [0, 2**64 - 1],
    DataType.float: [0.1, -3.4e38, float("nan"), 1],
    DataType.double: [0.1, 1e308, float("inf"), 7, "1.5", None],
    DataType.string: ["a", "é", "", 5],
    DataType.datetime: ["2026-01-01T00:00:00Z"],
}


def _expected(data_type: DataType, values: list) -> bytes:
    dvs = [v if isinstance(v, ua.DataValue) else data_value(data_type, v) for v in values]
    return struct_to_binary(ua.HistoryData(DataValues=dvs))


@pytest.mark.parametrize("data_type", list(RAW), ids=lambda t: t.value)
def test_bytes_are_asyncuas(data_type: DataType) -> None:
    values: list = []
    for i, raw in enumerate(RAW[data_type]):
        for quality in (0xC0, 0x40, 0x00, 0x0C):
            values.append(ArchiveValue(raw, quality, T0 + timedelta(seconds=i, microseconds=quality)))
    bound = ua.DataValue(
        StatusCode=ua.StatusCode(ua.StatusCodes.BadBoundNotFound), SourceTimestamp=T0, ServerTimestamp=T0
    )
    values = [bound, *values, bound]
    try:
        expected = _expected(data_type, values)
    except Exception:  # asyncua cannot encode one of them (a float beyond Float): neither does the fast path
        with pytest.raises(Exception):
            encode_history_data(data_type, values)
        return
    encoded = encode_history_data(data_type, values)
    assert encoded.Body == expected
    assert encoded.count == len(values) == len(encoded.DataValues)


def test_timestamps_far_and_naive() -> None:
    stamps = [
        datetime(1601, 1, 1, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, tzinfo=UTC),
        datetime(2026, 6, 30, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 6, 30, 12, 0),
    ]
    values = [ArchiveValue(1.0, 0xC0, t) for t in stamps]
    assert encode_history_data(DataType.double, values).Body == _expected(DataType.double, values)


def test_in_process_readers_get_datavalues() -> None:
    encoded = encode_history_data(DataType.double, [ArchiveValue(2.5, 0xC0, T0)])
    (dv,) = encoded.DataValues
    assert dv.Value.Value == 2.5 and dv.Value.VariantType == ua.VariantType.Double
    assert dv.SourceTimestamp == T0 and dv.StatusCode.is_good()
