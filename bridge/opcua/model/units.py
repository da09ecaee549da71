"""WinCC unit text -> OPC UA EUInformation (UNECE Recommendation 20 codes, OPC UA Part 8 §5.6.3).

WinCC stores a tag's unit as free text ("m3/h", "°C", "degC", "1/min"...). Clients that evaluate units
programmatically look at `EUInformation.UnitId`, the UNECE common code packed into an Int32 (Part 8: each ASCII
character of the code shifted in, "CEL" -> 0x43454C = 4408652). Known spellings map to that code, with the
official symbol as DisplayName; anything else keeps its text as DisplayName with UnitId -1 ("not available"), so
nothing the plant wrote is ever lost.

Codes are taken from OPC Foundation's UNECE_to_OPCUA.csv; P1 (percent), 59 (ppm) and E32 (litre per hour) are
UNECE Rec. 20 codes that file does not list.
"""

from __future__ import annotations

import unicodedata

from asyncua import ua

__all__ = ["UNECE_NAMESPACE", "UNITS", "eu_information", "lookup_unit", "unit_id"]

UNECE_NAMESPACE = "http://www.opcfoundation.org/UA/units/un/cefact"


def unit_id(code: str) -> int:
    """The Int32 UnitId of a UNECE common code (Part 8 §5.6.3)."""
    value = 0
    for ch in code[:4]:
        value = (value << 8) | ord(ch)
    return value


# (UNECE code, symbol shown to clients, description, other spellings seen in WinCC projects)
_TABLE: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    # length
    ("MTR", "m", "metre", ("meter", "metre")),
    ("MMT", "mm", "millimetre", ()),
    ("CMT", "cm", "centimetre", ()),
    ("KMT", "km", "kilometre", ()),
    ("4H", "µm", "micrometre (micron)", ("um", "μm")),
    # area, volume
    ("MTK", "m²", "square metre", ("m2", "m^2", "qm")),
    ("MTQ", "m³", "cubic metre", ("m3", "m^3", "cbm")),
    ("LTR", "l", "litre", ("L", "ltr", "liter", "litre")),
    ("MLT", "ml", "millilitre", ("mL",)),
    ("HLT", "hl", "hectolitre", ("hL",)),
    # speed, acceleration, rotation
    ("MTS", "m/s", "metre per second", ()),
    ("KMH", "km/h", "kilometre per hour", ("kph",)),
    ("C16", "mm/s", "millimetre per second", ()),
    ("2X", "m/min", "metre per minute", ()),
    ("MSK", "m/s²", "metre per second squared", ("m/s2", "m/s^2")),
    ("RPM", "r/min", "revolutions per minute", ("rpm", "RPM", "1/min", "U/min", "min-1", "min^-1", "min⁻¹", "rev/min")),
    ("RPS", "r/s", "revolutions per second", ("rps", "U/s")),
    ("DD", "°", "degree [unit of angle]", ("deg", "grad")),
    # flow
    ("MQH", "m³/h", "cubic metre per hour", ("m3/h", "m^3/h", "cbm/h")),
    ("MQS", "m³/s", "cubic metre per second", ("m3/s", "m^3/s")),
    ("G53", "m³/min", "cubic metre per minute", ("m3/min", "m^3/min")),
    ("L2", "l/min", "litre per minute", ("L/min", "lpm")),
    ("E32", "l/h", "litre per hour", ("L/h", "lph")),
    ("G51", "l/s", "litre per second", ("L/s",)),
    # mass, mass flow, density
    ("KGM", "kg", "kilogram", ()),
    ("GRM", "g", "gram", ()),
    ("MGM", "mg", "milligram", ()),
    ("TNE", "t", "tonne (metric ton)", ()),
    ("E93", "kg/h", "kilogram per hour", ()),
    ("KGS", "kg/s", "kilogram per second", ()),
    ("F31", "kg/min", "kilogram per minute", ()),
    ("E18", "t/h", "tonne per hour", ()),
    ("KMQ", "kg/m³", "kilogram per cubic metre", ("kg/m3",)),
    ("GL", "g/l", "gram per litre", ("g/L",)),
    # temperature
    ("CEL", "°C", "degree Celsius", ("degC", "deg C", "ºC", "℃", "Grad C", "GradC")),
    ("KEL", "K", "kelvin", ()),
    ("FAH", "°F", "degree Fahrenheit", ("degF", "deg F", "ºF", "℉")),
    # pressure
    ("BAR", "bar", "bar [unit of pressure]", ("bar(g)", "barg", "bar(a)", "bara")),
    ("MBR", "mbar", "millibar", ()),
    ("PAL", "Pa", "pascal", ()),
    ("A97", "hPa", "hectopascal", ()),
    ("KPA", "kPa", "kilopascal", ()),
    ("MPA", "MPa", "megapascal", ()),
    ("PS", "psi", "pound-force per square inch", ("lbf/in²", "lbf/in2", "psig", "psia")),
    # ratios
    ("P1", "%", "percent", ("percent", "pct")),
    ("59", "ppm", "part per million", ()),
    ("C62", "1", "one", ()),
    # electricity
    ("VLT", "V", "volt", ()),
    ("2Z", "mV", "millivolt", ()),
    ("KVT", "kV", "kilovolt", ()),
    ("AMP", "A", "ampere", ()),
    ("4K", "mA", "milliampere", ()),
    ("B22", "kA", "kiloampere", ()),
    ("WTT", "W", "watt", ()),
    ("KWT", "kW", "kilowatt", ("KW",)),
    ("MAW", "MW", "megawatt", ()),
    ("WHR", "W·h", "watt hour", ("Wh",)),
    ("KWH", "kW·h", "kilowatt hour", ("kWh", "KWh", "KWH", "kW h", "kW*h")),
    ("MWH", "MW·h", "megawatt hour", ("MWh", "MWH", "MW h", "MW*h")),
    ("D46", "V·A", "volt - ampere", ("VA",)),
    ("KVA", "kV·A", "kilovolt - ampere", ("kVA",)),
    ("KVR", "kvar", "kilovar", ("kVAr", "kVAR")),
    ("OHM", "Ω", "ohm", ("Ohm", "ohm", "Ω")),
    ("B49", "kΩ", "kiloohm", ("kOhm", "kΩ")),
    ("G42", "µS/cm", "microsiemens per centimetre", ("uS/cm", "μS/cm")),
    ("HTZ", "Hz", "hertz", ("HZ", "hz")),
    ("KHZ", "kHz", "kilohertz", ()),
    # energy, force, torque
    ("JOU", "J", "joule", ()),
    ("KJO", "kJ", "kilojoule", ()),
    ("3B", "MJ", "megajoule", ()),
    ("NEW", "N", "newton", ()),
    ("B47", "kN", "kilonewton", ()),
    ("NU", "N·m", "newton metre", ("Nm", "N m", "N*m")),
    ("B48", "kN·m", "kilonewton metre", ("kNm",)),
    # time
    ("SEC", "s", "second [unit of time]", ("sec",)),
    ("C26", "ms", "millisecond", ()),
    ("MIN", "min", "minute [unit of time]", ()),
    ("HUR", "h", "hour", ("hr", "hrs")),
    ("DAY", "d", "day", ()),
    # misc
    ("LUX", "lx", "lux", ("lux",)),
    ("2N", "dB", "decibel", ()),
    ("Q30", "pH", "pH (potential of Hydrogen)", ()),
)


def _key(text: str) -> str:
    # NFKC folds "m³" -> "m3", "µ" (micro sign) -> "μ"; whitespace around the text is never significant
    return unicodedata.normalize("NFKC", text).strip()


def _build() -> dict[str, tuple[str, str, str]]:
    table: dict[str, tuple[str, str, str]] = {}
    for code, symbol, description, aliases in _TABLE:
        for spelling in (symbol, *aliases):
            table.setdefault(_key(spelling), (code, symbol, description))
    return table


UNITS: dict[str, tuple[str, str, str]] = _build()
"""Normalised spelling -> (UNECE code, symbol, description)."""


def lookup_unit(text: str) -> tuple[str, str, str] | None:
    """(UNECE code, symbol, description) for a unit text, or None if unknown. The match is exact after Unicode
    normalisation: case carries meaning in units (mW vs MW, mS vs MS), so only listed spellings match."""
    return UNITS.get(_key(text))


def eu_information(text: str) -> ua.EUInformation:
    """The EUInformation for a WinCC unit text: UNECE code where known, else UnitId -1 and the text itself."""
    found = lookup_unit(text)
    if found is None:
        return ua.EUInformation(
            NamespaceUri=UNECE_NAMESPACE,
            UnitId=-1,
            DisplayName=ua.LocalizedText(text),
            Description=ua.LocalizedText(text),
        )
    code, symbol, description = found
    return ua.EUInformation(
        NamespaceUri=UNECE_NAMESPACE,
        UnitId=unit_id(code),
        DisplayName=ua.LocalizedText(symbol),
        Description=ua.LocalizedText(description),
    )
