"""WinCC data types <-> OPC UA VariantTypes and values.

Reads are tolerant (WinCC installations send 1.0 for an int or "12" for a number; the UA side gets the exact
type or the tag goes Bad). Writes are strict, by one rule (the README's status section says it too):
- a value of another type family answers BadTypeMismatch: a String or Boolean into a number tag, a number into a
  Boolean, String or DateTime tag, a fraction (2.5) into an integer tag, an integer a Float/Double cannot hold
  exactly (2**53 + 1 into Double);
- a value of the right family that does not fit the tag's type answers BadOutOfRange (`OutOfRange`): any integer
  type into a smaller one beyond its range (Int64 2**40 into Int32, -1 into UInt16), a Double beyond +/-3.4e38
  into Float, NaN or infinity;
- everything else is converted: any integer type into any integer tag it fits, a whole-valued Float/Double into
  an integer tag, any number into a Double tag, a Double into a Float tag (WinCC rounds it to float precision).
WinCC never sees a refused value.
"""

from __future__ import annotations

import math
import struct
from datetime import UTC, datetime
from typing import Any

from asyncua import ua

from bridge.wincc.models import DataType

__all__ = ["VARIANT_TYPES", "OutOfRange", "from_wincc", "json_variant_type", "to_wincc", "variant_type"]

VT = ua.VariantType
VARIANT_TYPES: dict[DataType, ua.VariantType] = {
    DataType.bool: VT.Boolean,
    DataType.int8: VT.SByte,
    DataType.int16: VT.Int16,
    DataType.int32: VT.Int32,
    DataType.int64: VT.Int64,
    DataType.uint8: VT.Byte,
    DataType.uint16: VT.UInt16,
    DataType.uint32: VT.UInt32,
    DataType.uint64: VT.UInt64,
    DataType.float: VT.Float,
    DataType.double: VT.Double,
    DataType.string: VT.String,
    DataType.datetime: VT.DateTime,
}
_INT_RANGE: dict[DataType, tuple[int, int]] = {
    DataType.int8: (-(2**7), 2**7 - 1),
    DataType.int16: (-(2**15), 2**15 - 1),
    DataType.int32: (-(2**31), 2**31 - 1),
    DataType.int64: (-(2**63), 2**63 - 1),
    DataType.uint8: (0, 2**8 - 1),
    DataType.uint16: (0, 2**16 - 1),
    DataType.uint32: (0, 2**32 - 1),
    DataType.uint64: (0, 2**64 - 1),
}
_FLOAT_MAX = 3.4028234663852886e38


class OutOfRange(ValueError):
    """A written value of the right type family that the tag's type cannot hold (-> BadOutOfRange)."""


def variant_type(data_type: DataType) -> ua.VariantType:
    return VARIANT_TYPES[data_type]


def _parse_datetime(text: str) -> datetime:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def from_wincc(data_type: DataType, raw: Any) -> Any:
    """A value as WinCC sent it -> the Python value for the tag's VariantType. Raises ValueError if impossible."""
    if raw is None:
        raise ValueError("no value")
    if data_type is DataType.bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, (int, float)) and raw in (0, 1):
            return bool(raw)
        if isinstance(raw, str) and raw.strip().lower() in ("true", "false", "0", "1"):
            return raw.strip().lower() in ("true", "1")
        raise ValueError(f"{raw!r} is not a bool")
    if data_type in _INT_RANGE:
        if isinstance(raw, bool):
            return int(raw)
        if isinstance(raw, str):
            raw = float(raw) if any(c in raw for c in ".eE") else int(raw, 0)
        if isinstance(raw, float):
            if not raw.is_integer():
                raise ValueError(f"{raw!r} is not an integer")
            raw = int(raw)
        if not isinstance(raw, int):
            raise ValueError(f"{raw!r} is not an integer")
        lo, hi = _INT_RANGE[data_type]
        if not lo <= raw <= hi:
            raise ValueError(f"{raw} does not fit {data_type}")
        return raw
    if data_type in (DataType.float, DataType.double):
        if isinstance(raw, bool):
            return float(raw)
        if isinstance(raw, (int, float)):
            return float(raw)
        if isinstance(raw, str):
            return float(raw)  # accepts "NaN", "inf"
        raise ValueError(f"{raw!r} is not a number")
    if data_type is DataType.string:
        return raw if isinstance(raw, str) else str(raw)
    if data_type is DataType.datetime:
        if isinstance(raw, datetime):
            return raw
        if isinstance(raw, str):
            return _parse_datetime(raw)
        raise ValueError(f"{raw!r} is not an ISO 8601 time")
    raise ValueError(f"unsupported type {data_type}")


def json_variant_type(raw: Any) -> ua.VariantType | None:
    """The VariantType of a JSON value as it is, for a value the tag's declared WinCC type cannot hold: the
    REST API (docs/wincc-rest-api.md) says to trust the JSON value then (installations have been seen to declare
    the wrong type)."""
    if isinstance(raw, bool):
        return VT.Boolean
    if isinstance(raw, int):
        if -(2**63) <= raw < 2**63:
            return VT.Int64
        return VT.UInt64 if 0 <= raw < 2**64 else None
    if isinstance(raw, float):
        return VT.Double
    if isinstance(raw, str):
        return VT.String
    return None


def to_wincc(data_type: DataType, variant: ua.Variant) -> Any:
    """A written Variant -> the JSON value sent to WinCC, by the rule in the module docstring.

    Raises TypeError (-> BadTypeMismatch) for another type family, OutOfRange (-> BadOutOfRange) for a value that
    does not fit. Arrays and nulls are never accepted for scalar tags."""
    value, vt = variant.Value, variant.VariantType
    if value is None or isinstance(value, (list, tuple)) or getattr(variant, "Dimensions", None):
        raise TypeError("scalar value required")
    if data_type is DataType.bool:
        if vt is VT.Boolean and isinstance(value, bool):
            return value
        raise TypeError(f"{vt.name} cannot be written to a Boolean tag")
    if data_type in _INT_RANGE:
        if isinstance(value, bool) or vt in (VT.Boolean, VT.String, VT.DateTime):
            raise TypeError(f"{vt.name} cannot be written to an integer tag")
        if isinstance(value, float):
            if not math.isfinite(value):
                raise OutOfRange(f"{value!r} is not a finite number")
            if not value.is_integer():
                raise TypeError(f"{value!r} is not a whole number")
            value = int(value)
        if not isinstance(value, int):
            raise TypeError(f"{vt.name} cannot be written to an integer tag")
        lo, hi = _INT_RANGE[data_type]
        if not lo <= value <= hi:
            raise OutOfRange(f"{value} does not fit {data_type}")
        return value
    if data_type in (DataType.float, DataType.double):
        if isinstance(value, bool) or vt in (VT.Boolean, VT.String, VT.DateTime):
            raise TypeError(f"{vt.name} cannot be written to a floating-point tag")
        if not isinstance(value, (int, float)):
            raise TypeError(f"{vt.name} cannot be written to a floating-point tag")
        f = float(value)
        if isinstance(value, int) and int(f) != value:
            raise TypeError(f"{value} loses precision as {data_type}")
        if data_type is DataType.float and math.isfinite(f):
            if abs(f) > _FLOAT_MAX:
                raise OutOfRange(f"{value!r} is beyond the range of float")
            if isinstance(value, int) and struct.unpack("f", struct.pack("f", f))[0] != f:
                raise TypeError(f"{value} loses precision as float")
        return f
    if data_type is DataType.string:
        if vt is VT.String and isinstance(value, str):
            return value
        raise TypeError(f"{vt.name} cannot be written to a String tag")
    if data_type is DataType.datetime:
        if vt is VT.DateTime and isinstance(value, datetime):
            v = value if value.tzinfo else value.replace(tzinfo=UTC)
            return v.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        raise TypeError(f"{vt.name} cannot be written to a DateTime tag")
    raise TypeError(f"unsupported type {data_type}")
