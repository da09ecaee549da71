"""What WinCC says, in the plant's terms. Plain frozen dataclasses: the UA side consumes these and never JSON.

Quality is kept as the WinCC/OPC DA quality byte (0xC0 good), already decoded from whatever the dialect sent
(number or `good`/`uncertain`/`bad` text); the UA side maps it to a StatusCode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

__all__ = [
    "QUALITY_BAD",
    "QUALITY_GOOD",
    "QUALITY_UNCERTAIN",
    "Alarm",
    "AlarmState",
    "ArchiveValue",
    "DataType",
    "Folder",
    "TagError",
    "TagInfo",
    "TagValue",
    "WriteError",
    "WriteResult",
    "decode_quality",
]

QUALITY_GOOD = 0xC0
QUALITY_UNCERTAIN = 0x40
QUALITY_BAD = 0x00


def decode_quality(raw: Any) -> int:
    """WinCC quality as a byte: numbers pass through, `good`/`uncertain`/`bad` text maps, missing is good."""
    if raw is None:
        return QUALITY_GOOD
    if isinstance(raw, bool):
        raise ValueError(f"quality {raw!r} is not a number or text")
    if isinstance(raw, int):
        if not 0 <= raw <= 0xFFFF:
            raise ValueError(f"quality {raw} out of range")
        return raw & 0xFF
    if isinstance(raw, float) and raw.is_integer():
        return decode_quality(int(raw))
    if isinstance(raw, str):
        text = raw.strip().lower()
        named = {"good": QUALITY_GOOD, "uncertain": QUALITY_UNCERTAIN, "bad": QUALITY_BAD}
        if text in named:
            return named[text]
        if text.isdigit() or text.lower().startswith("0x"):
            return decode_quality(int(text, 0))
    raise ValueError(f"quality {raw!r} is not a number or good/uncertain/bad")


class DataType(StrEnum):
    """WinCC tag types as named by the dp dialect; restservice numbers map onto these."""

    bool = "bool"
    int8 = "int8"
    int16 = "int16"
    int32 = "int32"
    int64 = "int64"
    uint8 = "uint8"
    uint16 = "uint16"
    uint32 = "uint32"
    uint64 = "uint64"
    float = "float"
    double = "double"
    string = "string"
    datetime = "datetime"


@dataclass(frozen=True, slots=True)
class Folder:
    """A node of the WinCC hierarchy. `path` is the segments from the root (dp: dotted name split; restservice:
    (connection,) or (connection, group))."""

    path: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.path[-1]


@dataclass(frozen=True, slots=True)
class TagInfo:
    """One WinCC tag as browsed. `name` is the exact WinCC name (the NodeId string); `folder` its parent path."""

    name: str
    data_type: DataType
    folder: tuple[str, ...] = ()
    display_name: str = ""
    unit: str | None = None
    description: str | None = None
    low: float | None = None
    high: float | None = None
    writable: bool = False
    archived: bool = False
    archive: str | None = None  # restservice: archive holding this tag
    archive_tag: str | None = None  # restservice: the archive tag's own name (differs from `name`)

    def __post_init__(self) -> None:
        if not self.display_name:
            object.__setattr__(self, "display_name", self.name)


@dataclass(frozen=True, slots=True)
class TagValue:
    name: str
    value: Any
    quality: int
    timestamp: datetime


class TagErrorKind(StrEnum):
    not_found = "not_found"
    bad_answer = "bad_answer"
    item_error = "item_error"


@dataclass(frozen=True, slots=True)
class TagError:
    """Why one tag of a batch has no value (the rest of the batch is unaffected)."""

    name: str
    reason: str
    kind: TagErrorKind = TagErrorKind.item_error


class WriteError(StrEnum):
    type_mismatch = "type_mismatch"
    out_of_range = "out_of_range"
    invalid = "invalid"  # any other 400
    forbidden = "forbidden"  # 403 / no access right
    not_writable = "not_writable"
    not_found = "not_found"
    timeout = "timeout"
    unreachable = "unreachable"  # connection error, 5xx, bad answer
    other = "other"


@dataclass(frozen=True, slots=True)
class WriteResult:
    name: str
    error: WriteError | None = None
    reason: str = ""
    value: Any = None  # the value WinCC reports as written, where it says

    @property
    def ok(self) -> bool:
        return self.error is None


class AlarmState(StrEnum):
    came = "came"
    went = "went"


@dataclass(frozen=True, slots=True)
class Alarm:
    """One WinCC alarm occurrence or state change. `id` names the alarm definition (reused by new occurrences)."""

    id: str
    text: str
    state: AlarmState
    acknowledged: bool
    timestamp: datetime
    tag: str | None = None
    alarm_class: str = "Alarm"
    priority: int = 1
    value: Any = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True)
class ArchiveValue:
    value: Any
    quality: int
    timestamp: datetime
