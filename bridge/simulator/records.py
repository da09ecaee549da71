"""What the simulated plant is made of: tags and alarms, their names and types as each REST dialect shows them,
integer ranges, and ISO timestamps as WinCC writes them. The plant's behaviour is in plant.py."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bridge.wincc.models import DataType

__all__ = ["GEN_TYPES", "INT_RANGE", "MAX_GENERATED", "RS_TYPE", "Alarm", "IsoClock", "Tag", "iso"]

MAX_GENERATED = 200_000

RS_TYPE = {
    DataType.bool: 1,
    DataType.int8: 2,
    DataType.uint8: 3,
    DataType.int16: 4,
    DataType.uint16: 5,
    DataType.int32: 6,
    DataType.uint32: 7,
    DataType.float: 8,
    DataType.double: 9,
    DataType.string: 10,
    DataType.int64: 6,
    DataType.uint64: 7,
    DataType.datetime: 10,
}
INT_RANGE = {
    DataType.int8: (-128, 127),
    DataType.int16: (-32768, 32767),
    DataType.int32: (-(2**31), 2**31 - 1),
    DataType.int64: (-(2**63), 2**63 - 1),
    DataType.uint8: (0, 255),
    DataType.uint16: (0, 65535),
    DataType.uint32: (0, 2**32 - 1),
    DataType.uint64: (0, 2**64 - 1),
}


GEN_TYPES = (DataType.float, DataType.int32, DataType.bool)


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class IsoClock:
    """ISO text of POSIX times, the whole-second part cached: a batch of generated tags shares a few seconds, and
    formatting a datetime per tag was the simulator's largest cost per read."""

    _LIMIT = 4096
    _MILLIS = tuple(f".{ms:03d}Z" for ms in range(1000))

    def __init__(self) -> None:
        self._seconds: dict[int, str] = {}

    def text(self, ts: float) -> str:
        whole = int(ts)
        head = self._seconds.get(whole)
        if head is None:
            if len(self._seconds) >= self._LIMIT:
                self._seconds.clear()
            head = self._seconds[whole] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        return head + self._MILLIS[int((ts - whole) * 1000)]


@dataclass
class Tag:
    name: str  # dp name
    type: DataType
    value: Any
    unit: str | None = None
    low: float | None = None
    high: float | None = None
    writable: bool = False
    archived: bool = False
    description: str = ""
    rs_alias: str | None = None  # a restservice name other than the derived one (e.g. with a space)
    quality: int = 0xC0
    timestamp: datetime = field(default_factory=lambda: datetime.now(UTC))
    history: list[tuple[datetime, Any, int]] = field(default_factory=list)

    @property
    def rs_name(self) -> str:
        """restservice name: System1.Tank1.Level -> Tank1_Level, System1.Hall 2.Temperatur Außen -> Hall2_..."""
        if self.rs_alias is not None:
            return self.rs_alias
        parts = self.name.split(".")
        return "_".join(p.replace(" ", "") for p in parts[1:] or parts)

    @property
    def rs_group(self) -> str:
        parts = self.name.split(".")
        return parts[min(1, len(parts) - 1)].replace(" ", "")


@dataclass
class Alarm:
    id: str
    tag: str
    text: str
    alarm_class: str
    priority: int
    active: bool = False
    acknowledged: bool = True
    timestamp: datetime = field(default_factory=lambda: datetime.now(UTC))
    value: Any = None
