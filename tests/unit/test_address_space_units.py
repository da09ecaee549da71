"""WinCC unit text -> EUInformation (UNECE Rec. 20 codes as OPC UA Part 8 packs them)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.opcua.model.units import UNECE_NAMESPACE, UNITS, eu_information, lookup_unit, unit_id

# (unit text as WinCC projects write it, UNECE code, UnitId from OPC Foundation's UNECE_to_OPCUA.csv)
KNOWN = [
    ("m", "MTR", 5067858),
    ("mm", "MMT", 5066068),
    ("cm", "CMT", 4410708),
    ("km", "KMT", 4934996),
    ("m/s", "MTS", 5067859),
    ("m3", "MTQ", 5067857),
    ("m³", "MTQ", 5067857),
    ("m3/h", "MQH", 5067080),
    ("l", "LTR", 5002322),
    ("l/min", "L2", 19506),
    ("kg", "KGM", 4933453),
    ("g", "GRM", 4674125),
    ("t", "TNE", 5525061),
    ("kg/h", "E93", 4536627),
    ("t/h", "E18", 4534584),
    ("°C", "CEL", 4408652),
    ("degC", "CEL", 4408652),
    ("K", "KEL", 4932940),
    ("°F", "FAH", 4604232),
    ("bar", "BAR", 4342098),
    ("mbar", "MBR", 5063250),
    ("Pa", "PAL", 5259596),
    ("kPa", "KPA", 4935745),
    ("MPa", "MPA", 5066817),
    ("psi", "PS", 20563),
    ("V", "VLT", 5655636),
    ("mV", "2Z", 12890),
    ("kV", "KVT", 4937300),
    ("A", "AMP", 4279632),
    ("mA", "4K", 13387),
    ("W", "WTT", 5723220),
    ("kW", "KWT", 4937556),
    ("MW", "MAW", 5062999),
    ("kWh", "KWH", 4937544),
    ("MWh", "MWH", 5068616),
    ("Hz", "HTZ", 4740186),
    ("rpm", "RPM", 5394509),
    ("1/min", "RPM", 5394509),
    ("s", "SEC", 5457219),
    ("ms", "C26", 4403766),
    ("min", "MIN", 5065038),
    ("h", "HUR", 4740434),
    ("N", "NEW", 5129559),
    ("Nm", "NU", 20053),
]


@pytest.mark.parametrize("text,code,expected_id", KNOWN)
def test_common_units_have_their_unece_code(text: str, code: str, expected_id: int) -> None:
    eu = eu_information(text)
    assert lookup_unit(text)[0] == code
    assert unit_id(code) == expected_id
    assert eu.UnitId == expected_id
    assert eu.NamespaceUri == UNECE_NAMESPACE
    assert eu.DisplayName.Text == lookup_unit(text)[1]
    assert eu.Description.Text


@pytest.mark.parametrize("text,code", [("%", "P1"), ("ppm", "59"), ("l/h", "E32")])
def test_codes_outside_the_opc_csv(text: str, code: str) -> None:
    assert eu_information(text).UnitId == unit_id(code)


def test_unit_id_packs_ascii_codes() -> None:
    assert unit_id("CEL") == 0x43454C
    assert unit_id("P1") == 0x5031


def test_unknown_unit_keeps_its_text() -> None:
    eu = eu_information("Stk/h")
    assert eu.UnitId == -1
    assert eu.DisplayName.Text == "Stk/h"


@pytest.mark.parametrize("text", ["mW", "MS", "Mbar"])
def test_case_is_never_guessed(text: str) -> None:
    # mW is not MW and Mbar is not mbar: a unit differing only in case is unknown, not silently another unit
    assert lookup_unit(text) is None


def test_every_table_entry_maps_to_a_valid_code() -> None:
    for code, symbol, description in UNITS.values():
        assert 1 <= len(code) <= 3 and code.isalnum() and symbol and description


@given(st.text(max_size=20))
def test_any_text_gives_a_usable_eu_information(text: str) -> None:
    eu = eu_information(text)
    assert isinstance(eu.UnitId, int)
    assert eu.DisplayName.Text is not None
