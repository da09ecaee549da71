"""IndexRange (NumericRange, OPC UA Part 4 7.27) on a Read: parse it, apply it, or say why not.

asyncua ignores IndexRange and answers the whole value Good. Here: bad syntax ("", "2:1", "-1", "a", "1:1") is
BadIndexRangeInvalid; a range on a scalar (every WinCC tag is one), or past the end of the array, String or
ByteString, is BadIndexRangeNoData; otherwise the value is cut to the range (the end is clipped to the length).
One dimension per array level: "1:2,0:3" on an array of Strings cuts the array, then each String.
"""

from __future__ import annotations

import re
from typing import Any

from asyncua import ua

__all__ = ["apply_index_range", "parse_index_range"]

S = ua.StatusCodes
_DIM = re.compile(r"^(\d{1,9})(?::(\d{1,9}))?$")


def parse_index_range(text: str) -> list[tuple[int, int]] | None:
    """[(first, last)] per dimension, both inclusive; None when the syntax is invalid."""
    dims = []
    for part in text.split(","):
        m = _DIM.match(part)
        if m is None:
            return None
        first = int(m.group(1))
        last = int(m.group(2)) if m.group(2) is not None else first
        if m.group(2) is not None and last <= first:  # Part 4: "the second integer shall be greater"
            return None
        dims.append((first, last))
    return dims


def _cut(value: Any, dims: list[tuple[int, int]]) -> Any:
    if not dims:
        return value
    if not isinstance(value, (list, tuple, str, bytes, bytearray)):
        raise LookupError("scalar")
    first, last = dims[0]
    if first >= len(value):
        raise LookupError("past the end")
    part = value[first : last + 1]
    if len(dims) == 1:
        return part
    if isinstance(part, (str, bytes, bytearray)):
        raise LookupError("too many dimensions")
    return [_cut(v, dims[1:]) for v in part]


def apply_index_range(dv: ua.DataValue, text: str) -> ua.DataValue:
    """The DataValue cut to the range, or one with the Bad status that says why not."""
    dims = parse_index_range(text)
    if dims is None:
        return ua.DataValue(StatusCode=ua.StatusCode(S.BadIndexRangeInvalid))
    if not dv.StatusCode.is_good() and (dv.Value is None or dv.Value.Value is None):
        return dv
    variant = dv.Value
    try:
        value = _cut(variant.Value if variant is not None else None, dims)
    except LookupError:
        return ua.DataValue(StatusCode=ua.StatusCode(S.BadIndexRangeNoData))
    cut = ua.Variant(value, variant.VariantType, is_array=isinstance(value, list)) if variant is not None else None
    return ua.DataValue(
        cut, StatusCode=dv.StatusCode, SourceTimestamp=dv.SourceTimestamp, ServerTimestamp=dv.ServerTimestamp
    )
