"""WinCC quality and REST outcomes -> OPC UA StatusCodes, as the table in docs/architecture.md says."""

from __future__ import annotations

from asyncua import ua

from bridge.wincc.models import WriteError

__all__ = [
    "quality_to_status",
    "shared_status",
    "write_error_to_status",
    "BAD_COMMUNICATION",
    "WAITING_FOR_INITIAL_DATA",
]

S = ua.StatusCodes
BAD_COMMUNICATION = ua.StatusCode(S.BadCommunicationError)
WAITING_FOR_INITIAL_DATA = ua.StatusCode(S.BadWaitingForInitialData)

_UNCERTAIN_SUB = {0x44: S.UncertainLastUsableValue, 0x50: S.UncertainSensorNotAccurate}
_BAD_SUB = {
    0x08: S.BadNotConnected,
    0x0C: S.BadDeviceFailure,
    0x10: S.BadSensorFailure,
    0x18: S.BadCommunicationError,
    0x1C: S.BadOutOfService,
}
# OPC DA limit bits (low two bits of the quality) -> UA StatusCode limit bits (Part 4, 7.39: bits 8-9)
_LIMIT_BITS = {0: 0, 1: 0x100, 2: 0x200, 3: 0x300}
_CACHE: dict[int, ua.StatusCode] = {}
_SHARED: dict[int, ua.StatusCode] = {}


def quality_to_status(quality: int) -> ua.StatusCode:
    """Map a WinCC/OPC DA quality byte. Cached: the sync engine calls this for every changed value."""
    code = _CACHE.get(quality)
    if code is None:
        code = _CACHE[quality] = shared_status(_map(quality))
    return code


def shared_status(code: int) -> ua.StatusCode:
    """One StatusCode object per code, shared by every DataValue that carries it. A DataValue held by the address
    space lives as long as its value: at 100,000 tags a StatusCode each was 100,000 more objects for the garbage
    collector to walk and ~1 us more per published value. Nothing in asyncua or the bridge changes a StatusCode
    in place (they replace it), so sharing is safe; never set `.value` on one."""
    status = _SHARED.get(code)
    if status is None:
        status = _SHARED[code] = ua.StatusCode(code)
    return status


def _map(quality: int) -> int:
    q = quality & 0xFF
    sub = q & 0xFC
    if q >= 0x80:
        base = S.Good
    elif q >= 0x40:
        base = _UNCERTAIN_SUB.get(sub, S.Uncertain)
    else:
        base = _BAD_SUB.get(sub, S.Bad)
    return base | _LIMIT_BITS[q & 0x03]


_WRITE = {
    WriteError.type_mismatch: S.BadTypeMismatch,
    WriteError.out_of_range: S.BadOutOfRange,
    WriteError.invalid: S.BadInvalidArgument,
    WriteError.forbidden: S.BadUserAccessDenied,
    WriteError.not_writable: S.BadNotWritable,
    WriteError.not_found: S.BadNodeIdUnknown,
    WriteError.timeout: S.BadTimeout,
    WriteError.unreachable: S.BadCommunicationError,
    WriteError.other: S.Bad,
}


def write_error_to_status(error: WriteError | None, *, tag_writable: bool = True) -> ua.StatusCode:
    """A REST write outcome as the node's StatusCode. A 403 on a tag WinCC marks read-only is BadNotWritable."""
    if error is None:
        return ua.StatusCode(S.Good)
    if error is WriteError.forbidden and not tag_writable:
        return ua.StatusCode(S.BadNotWritable)
    return ua.StatusCode(_WRITE[error])
