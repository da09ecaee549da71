"""Touchpoint 11: enum values a client may send out of range."""

from __future__ import annotations

from typing import Any

from asyncua.ua import ua_binary

from bridge.opcua._asyncua.touchpoint import Touchpoint

# ---- 11. Enum values a client may send out of range ----------------------------------------------------------------
# Why: asyncua decodes an enum field with `EnumClass(value)`, so a Browse whose BrowseDirection is 3 raised
# ValueError while the request was decoded and the client got a ServiceFault BadInternalError, not the
# BadBrowseDirectionInvalid per node that Part 4 asks for (the browse service answers that for anything but
# Forward/Inverse/Both). A `_missing_` hook lets such a value decode as a pseudo-member (name "Invalid<n>") that
# equals no real member. Read against asyncua 2.1.0: ua_binary.create_enum_deserializer -> uatype(Int32).


def tolerate_unknown_values(enum: type[Any]) -> None:
    """Let `enum(n)` return a pseudo-member for an unknown int n instead of raising (idempotent)."""
    if getattr(enum, "_bridge_tolerant", False):
        return

    def _missing_(cls: type[Any], value: object) -> Any:
        if not isinstance(value, int) or isinstance(value, bool):
            return None
        member = int.__new__(cls, value)
        member._name_ = f"Invalid{value}"
        member._value_ = value
        return member

    enum._missing_ = classmethod(_missing_)
    enum._bridge_tolerant = True


TOUCHPOINTS: list[Touchpoint] = [
    Touchpoint("11 enum values out of range", ua_binary, "create_enum_deserializer", ("uatype",)),
]
