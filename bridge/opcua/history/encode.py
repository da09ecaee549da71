"""Raw history pages encoded straight to OPC UA binary, without a DataValue and a Variant per archived value.

A raw HistoryRead answer is mostly thousands of values of one tag: same type, mostly the same quality. Building a
DataValue (and its Variant, which validates itself) per value and letting asyncua's generic serializer walk each
one's fields cost about 6 us a value, more than reading and parsing the archive over REST. Here a page is packed
with one precompiled struct per value type; a value that does not fit its tag's type, or a type without a fixed
size (strings, date-times), goes through asyncua's own encoder as before, so every byte is what asyncua would send.

The result is a HistoryData ExtensionObject whose Body is the encoded HistoryData (asyncua writes an
ExtensionObject's Body as it is: bridge/opcua/_asyncua/ section 9). Code in this process that reads the answer
(tests) gets the DataValues from `.DataValues`, decoded on first use.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from asyncua import ua

from bridge.opcua._asyncua import Buffer, from_binary, struct_to_binary
from bridge.opcua.model.status import quality_to_status
from bridge.opcua.model.types import VARIANT_TYPES, from_wincc
from bridge.wincc.models import ArchiveValue, DataType

__all__ = ["EncodedHistoryData", "data_value", "encode_history_data", "raw_result"]

S = ua.StatusCodes
_HISTORY_DATA = ua.NodeId(ua.ObjectIds.HistoryData_Encoding_DefaultBinary)
_MASK = 0x01 | 0x02 | 0x04 | 0x08  # Value, StatusCode, SourceTimestamp, ServerTimestamp (asyncua always sends all 4)
_FILETIME_1970 = 116_444_736_000_000_000  # 100 ns ticks from 1601 to 1970
_FORMATS = {
    ua.VariantType.Boolean: "?",
    ua.VariantType.SByte: "b",
    ua.VariantType.Byte: "B",
    ua.VariantType.Int16: "h",
    ua.VariantType.UInt16: "H",
    ua.VariantType.Int32: "i",
    ua.VariantType.UInt32: "I",
    ua.VariantType.Int64: "q",
    ua.VariantType.UInt64: "Q",
    ua.VariantType.Float: "f",
    ua.VariantType.Double: "d",
}
# mask, variant type, value, status code, source timestamp, server timestamp
_PACKERS = {vt: struct.Struct(f"<BB{fmt}Iqq").pack for vt, fmt in _FORMATS.items()}
_COUNT = struct.Struct("<i").pack


class EncodedHistoryData(ua.ExtensionObject):
    """HistoryData already in OPC UA binary. `count` values; `DataValues` decodes them (for in-process readers)."""

    def __init__(self, body: bytes, count: int) -> None:
        super().__init__(TypeId=_HISTORY_DATA, Body=body)
        self.count = count
        self._decoded: list[ua.DataValue] | None = None

    @property
    def DataValues(self) -> list[ua.DataValue]:  # noqa: N802 (asyncua's field name)
        if self._decoded is None:
            self._decoded = from_binary(ua.HistoryData, Buffer(self.Body or b"")).DataValues
        return self._decoded


def data_value(data_type: DataType, v: ArchiveValue) -> ua.DataValue:
    """One archived value as a DataValue (bounds, and values the fast path does not pack)."""
    try:
        variant = ua.Variant(from_wincc(data_type, v.value), VARIANT_TYPES[data_type])
        status = quality_to_status(v.quality)
    except (ValueError, TypeError):
        variant, status = ua.Variant(None, ua.VariantType.Null), ua.StatusCode(S.BadTypeMismatch)
    return ua.DataValue(variant, StatusCode=status, SourceTimestamp=v.timestamp, ServerTimestamp=v.timestamp)


def _ticks(t: datetime) -> int:
    # exact for microsecond datetimes of this era (the float holds ~0.25 us); asyncua's own for the rest
    if t.tzinfo is None or not 1601 < t.year < 9999:
        return ua.datetime_to_win_epoch(t)
    return round(t.timestamp() * 1e6) * 10 + _FILETIME_1970


def encode_history_data(data_type: DataType, values: Sequence[ArchiveValue | ua.DataValue]) -> EncodedHistoryData:
    """Encode archived values (and ready DataValues, e.g. bounds) as one HistoryData, in order."""
    variant_type = VARIANT_TYPES[data_type]
    pack = _PACKERS.get(variant_type)
    vt = variant_type.value
    parts: list[bytes] = [_COUNT(len(values))]
    append = parts.append
    for v in values:
        if pack is not None and type(v) is ArchiveValue:
            try:
                value: Any = from_wincc(data_type, v.value)
                ticks = _ticks(v.timestamp)
                append(pack(_MASK, vt, value, quality_to_status(v.quality).value, ticks, ticks))
                continue
            except (ValueError, TypeError, OverflowError, struct.error):
                pass  # asyncua's path below gives the same answer as before (BadTypeMismatch, or its error)
        append(struct_to_binary(v if isinstance(v, ua.DataValue) else data_value(data_type, v)))
    return EncodedHistoryData(b"".join(parts), len(values))


def raw_result(
    code: int, data_type: DataType, values: Sequence[ArchiveValue | ua.DataValue], cp: bytes | None = None
) -> ua.HistoryReadResult:
    """A raw HistoryRead result for one node, its values encoded here."""
    return ua.HistoryReadResult(
        StatusCode=ua.StatusCode(code), ContinuationPoint=cp, HistoryData=encode_history_data(data_type, values)
    )
