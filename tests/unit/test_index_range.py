"""IndexRange on a Read (services/index_range.py): the NumericRange syntax of Part 4 7.27, and what it does to a
scalar, an array, a String and a ByteString."""

from __future__ import annotations

from asyncua import ua
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.opcua.services.index_range import apply_index_range, parse_index_range

S = ua.StatusCodes


def dv(value: object, vt: ua.VariantType) -> ua.DataValue:
    return ua.DataValue(ua.Variant(value, vt))


def test_syntax() -> None:
    assert parse_index_range("3") == [(3, 3)]
    assert parse_index_range("1:4") == [(1, 4)]
    assert parse_index_range("0:1,2") == [(0, 1), (2, 2)]
    for bad in ("", "-1", "a", "1:1", "2:1", "1:", ":2", "1,,2", " 1", "1.5", "9999999999"):
        assert parse_index_range(bad) is None, bad


def test_a_scalar_has_no_data_in_any_range() -> None:
    assert apply_index_range(dv(5.0, ua.VariantType.Double), "0").StatusCode.value == S.BadIndexRangeNoData
    assert apply_index_range(dv(5.0, ua.VariantType.Double), "x").StatusCode.value == S.BadIndexRangeInvalid


def test_arrays_strings_and_bytes_are_cut() -> None:
    assert apply_index_range(dv([1, 2, 3, 4], ua.VariantType.Int32), "1:2").Value.Value == [2, 3]
    assert apply_index_range(dv([1, 2, 3, 4], ua.VariantType.Int32), "2:9").Value.Value == [3, 4]  # clipped
    assert apply_index_range(dv([1, 2], ua.VariantType.Int32), "2").StatusCode.value == S.BadIndexRangeNoData
    assert apply_index_range(dv("hello", ua.VariantType.String), "1:3").Value.Value == "ell"
    assert apply_index_range(dv(b"\x00\x01\x02", ua.VariantType.ByteString), "2").Value.Value == b"\x02"
    assert apply_index_range(dv(["ab", "cd", "ef"], ua.VariantType.String), "1:2,1").Value.Value == ["d", "f"]
    assert apply_index_range(dv("ab", ua.VariantType.String), "0,0").StatusCode.value == S.BadIndexRangeNoData


@settings(max_examples=200)
@given(
    value=st.one_of(st.floats(), st.lists(st.integers(), max_size=20), st.text(max_size=20)), text=st.text(max_size=12)
)
def test_any_range_on_any_value_answers_a_value_or_a_bad_status(value: object, text: str) -> None:
    vt = (
        ua.VariantType.Double
        if isinstance(value, float)
        else (ua.VariantType.String if isinstance(value, str) else ua.VariantType.Int64)
    )
    out = apply_index_range(dv(value, vt), text)
    assert out.StatusCode.is_good() or out.StatusCode.value in (S.BadIndexRangeInvalid, S.BadIndexRangeNoData)
