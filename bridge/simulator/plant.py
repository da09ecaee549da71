"""The simulated plant: tags with live dynamics, limit alarms and an archive. No HTTP here.

Demo plant (dp names; restservice names replace the dots with "_" after "System1." and group by the middle
segment): Tank1 (level follows the inlet/outlet valves), Pump1 (speed follows its setpoint), Reactor
(temperature follows its setpoint, first order, with deterministic noise), Counters (every integer type), Status
(string, datetime) and "Hall 2" (a name with a space and a non-ASCII letter).

Generated tags (`tags=N`, at most MAX_GENERATED): dp `System1.Gen.G{i//1000:03d}.Tag{i:06d}`, restservice
`Gen_{i:06d}` in group `Gen{i//1000:03d}`; types cycle float, int32, bool (i % 3). Values are computed on read
from the time, so 200k idle tags cost nothing: tag i changes every 1/change_rate seconds, phase-shifted by i,
value = number of changes so far (bool: its parity); the timestamp is the time of the last change.

Archive (deterministic, so history tests can compute by hand):
- generated tags with i % 10 == 0: one value per second, v(s) = (i % 97) + (s % 3600) / 10.0 where s = whole
  seconds since the archive epoch (options.archive_epoch, default start time minus backfill_days, floored to the
  second), quality 192; float tags archive v(s), int32 tags round(10 * v(s)), bool tags s % 2 == 1.
- demo archived tags: one value every 10 s from the epoch to start, value(k) = low + (high - low) *
  (0.5 + 0.4 * sin(k / 30)) for the k-th value, quality 192; then the live value once per tick.

Alarms: 1001 Tank 1 level > 9 m, 1002 reactor temperature > 180 degC, 1003 pump 1 stopped with a speed setpoint.
With `alarms_per_minute` > 0 (the demo) the plant disturbs itself at about that rate (seeded, so repeatable): a
reactor temperature spike, a tank overfill that then drains, or a pump trip of a few seconds; each drives its tag
across the limit, so the alarm comes and goes by itself. `add_alarms(n)` defines n more alarms (ids G1..Gn, on
generated tags, else on the demo tags) that only the control API raises and clears (benchmarks).
"""

from __future__ import annotations

import bisect
import math
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bridge.simulator.records import GEN_TYPES, INT_RANGE, MAX_GENERATED, RS_TYPE, Alarm, IsoClock, Tag, iso
from bridge.wincc.models import DataType

# Alarm, Tag, MAX_GENERATED, RS_TYPE and iso are re-exported: the routes import them from here
__all__ = ["MAX_GENERATED", "RS_TYPE", "Alarm", "Plant", "Tag", "iso"]


class Plant:
    def __init__(
        self,
        *,
        generated: int = 0,
        change_rate: float = 0.1,
        seed: int = 1,
        backfill_days: float = 2,
        archive_epoch: datetime | None = None,
        alarms_per_minute: float = 0.0,
    ) -> None:
        if not 0 <= generated <= MAX_GENERATED:
            raise ValueError(f"generated tags must be 0..{MAX_GENERATED}, not {generated}")
        self.started = datetime.now(UTC).replace(microsecond=0)
        self.epoch = archive_epoch or (self.started - timedelta(days=backfill_days))
        self.seed = seed
        self.generated = generated
        self.change_rate = change_rate
        self._mono0 = time.monotonic()
        self.tags: dict[str, Tag] = {}
        self.by_rs: dict[str, Tag] = {}  # restservice name -> tag, kept by add_tag / remove_tag
        self.removed_generated: set[int] = set()
        self._gen_names: dict[str, int] = {}  # names already parsed: polls ask for the same names again and again
        # Bumped whenever the tag list changes, so the HTTP side can cache its browse listings.
        self.version = 0
        self._clock = IsoClock()
        self._period = 1.0 / change_rate if change_rate > 0 else 0.0
        self._build_demo()
        self.alarms: dict[str, Alarm] = {
            "1001": Alarm("1001", "System1.Tank1.Level", "Tank 1 level high", "Alarm", 800),
            "1002": Alarm("1002", "System1.Reactor.Temperature", "Reactor temperature high", "Alarm", 900),
            "1003": Alarm("1003", "System1.Pump1.Running", "Pump 1 not running", "Warning", 300),
        }
        self.forced_alarms: dict[str, bool] = {}
        self.alarm_log: list[dict[str, Any]] = []
        self.alarms_per_minute = alarms_per_minute
        self._rng = random.Random(seed)
        self._sim_s = 0.0  # simulated seconds since start (sum of tick dt)
        self._next_disturbance = self._rng.expovariate(alarms_per_minute / 60) if alarms_per_minute > 0 else math.inf
        self._draining_until = 0.0  # tank overfill: extra outflow until then
        self._trip_until = 0.0  # pump trip: not running until then
        self._tick_n = 0
        self._backfill()

    # ---- model ---------------------------------------------------------------------------------------------
    def _add(self, name: str, type_: DataType, value: Any, **kw: Any) -> None:
        self.add_tag(Tag(name, type_, value, **kw))

    def add_tag(self, tag: Tag) -> None:
        """Add (or replace) a tag; it is in every listing, read and write from now on."""
        old = self.tags.pop(tag.name, None)
        if old is not None:
            self.by_rs.pop(old.rs_name, None)
        self.tags[tag.name] = tag
        self.by_rs[tag.rs_name] = tag
        self.version += 1

    def remove_tag(self, name: str) -> bool:
        """Remove a tag named as either dialect names it (demo, added or generated). False if there is none."""
        tag = self.tags.pop(name, None) or self.by_rs.get(name)
        if tag is not None:
            self.tags.pop(tag.name, None)
            self.by_rs.pop(tag.rs_name, None)
        elif (i := self.gen_index(name)) is not None:
            self.removed_generated.add(i)
        else:
            return False
        self.version += 1
        return True

    def dp_name(self, rs_name: str) -> str | None:
        """restservice name -> the plant's (dp) name; generated names are the same in both."""
        tag = self.by_rs.get(rs_name)
        if tag is not None:
            return tag.name
        return rs_name if self.gen_index(rs_name) is not None else None

    def _build_demo(self) -> None:
        D = DataType
        a = self._add
        a("System1.Tank1.Level", D.float, 5.0, unit="m", low=0, high=10, archived=True, description="Tank 1 level")
        a("System1.Tank1.InletValve", D.bool, True, writable=True, description="Inlet valve open")
        a("System1.Tank1.OutletValve", D.bool, False, writable=True, description="Outlet valve open")
        a("System1.Tank1.LevelSetpoint", D.float, 8.0, unit="m", low=0, high=10, writable=True)
        a("System1.Pump1.Speed", D.float, 0.0, unit="rpm", low=0, high=3000, archived=True)
        a("System1.Pump1.SpeedSetpoint", D.float, 1500.0, unit="rpm", low=0, high=3000, writable=True)
        a("System1.Pump1.Running", D.bool, True)
        a("System1.Reactor.Temperature", D.double, 80.0, unit="degC", low=0, high=200, archived=True)
        a("System1.Reactor.TemperatureSetpoint", D.double, 90.0, unit="degC", low=0, high=200, writable=True)
        a("System1.Counters.Batch", D.int32, 1, writable=True)
        a("System1.Counters.Int8Value", D.int8, -5)
        a("System1.Counters.Int16Value", D.int16, 0, low=-100, high=100, writable=True)
        a("System1.Counters.Int64Value", D.int64, 2**40)
        a("System1.Counters.UInt8Value", D.uint8, 200)
        a("System1.Counters.UInt16Value", D.uint16, 60000)
        a("System1.Counters.UInt32Value", D.uint32, 4_000_000_000)
        a("System1.Counters.UInt64Value", D.uint64, 2**60)
        a("System1.Status.Text", D.string, "running", writable=True)
        a("System1.Status.LastBatchStart", D.datetime, iso(self.started), writable=True)
        a("System1.Hall 2.Temperatur Außen", D.float, 12.5, unit="degC", low=-40, high=60, archived=True)

    def _backfill(self) -> None:
        start = self.epoch
        n = int((self.started - start).total_seconds() // 10)
        for tag in self.tags.values():
            if not tag.archived:
                continue
            lo, hi = tag.low or 0.0, tag.high or 100.0
            tag.history = [
                (start + timedelta(seconds=10 * k), lo + (hi - lo) * (0.5 + 0.4 * math.sin(k / 30)), 0xC0)
                for k in range(n)
            ]

    # ---- generated tags ------------------------------------------------------------------------------------
    @staticmethod
    def gen_type(i: int) -> DataType:
        return GEN_TYPES[i % 3]

    def gen_name(self, i: int, dialect: str) -> str:
        return f"System1.Gen.G{i // 1000:03d}.Tag{i:06d}" if dialect == "dp" else f"Gen_{i:06d}"

    def gen_index(self, name: str) -> int | None:
        """The index of a generated tag named exactly as one of the dialects names it, else None."""
        i = self._gen_names.get(name)
        if i is None:
            i = self._parse_gen_name(name)
            if i is None:
                return None
            self._gen_names[name] = i  # at most two names per generated tag: bounded by MAX_GENERATED
        return None if i in self.removed_generated else i

    def _parse_gen_name(self, name: str) -> int | None:
        tail = name[-6:]
        if not (tail.isascii() and tail.isdigit()) or int(tail) >= self.generated:
            return None
        i = int(tail)
        if len(name) == 10:
            return i if name[:4] == "Gen_" else None
        return i if name == f"System1.Gen.G{i // 1000:03d}.Tag{tail}" else None

    def gen_value(self, i: int, now: float | None = None) -> tuple[Any, float]:
        """(value, POSIX time of its last change)."""
        period = self._period
        if not period:
            changes, ts = 0, self.started.timestamp()
        else:
            phase = (i * 0.6180339887 % 1.0) * period
            changes = int(((time.time() if now is None else now) - phase) // period)
            ts = changes * period + phase
        t = i % 3
        value: Any = float(changes) if t == 0 else changes if t == 1 else bool(changes % 2)
        return value, ts

    def gen_archive(self, i: int, start: datetime, end: datetime, limit: int) -> list[tuple[datetime, Any, int]]:
        if i % 10:
            return []
        first = max(0, math.ceil((start - self.epoch).total_seconds()))
        last = math.floor((min(end, datetime.now(UTC)) - self.epoch).total_seconds())
        kind = self.gen_type(i)
        out = []
        for s in range(first, min(last, first + limit - 1) + 1):
            v = float((i % 97) + (s % 3600) / 10.0)
            value: Any = (
                v if kind is DataType.float else (int(round(v * 10)) if kind is DataType.int32 else bool(s % 2))
            )
            out.append((self.epoch + timedelta(seconds=s), value, 0xC0))
        return out

    # ---- reads and writes ----------------------------------------------------------------------------------
    def read(self, name: str, now: float | None = None) -> tuple[Any, int, str, DataType] | None:
        """(value, quality, ISO timestamp, type) of a dp-named tag, None if unknown. `now` (POSIX) lets a batch
        read every generated tag at one instant."""
        tag = self.tags.get(name)
        if tag is not None:
            return tag.value, tag.quality, iso(tag.timestamp), tag.type
        i = self.gen_index(name)
        if i is None:
            return None
        value, ts = self.gen_value(i, now)
        return value, 0xC0, self._clock.text(ts), GEN_TYPES[i % 3]

    def check_write(self, name: str, value: Any) -> tuple[int, str]:
        """(http status, error text); 200 = ok. Applies the value when ok."""
        tag = self.tags.get(name)
        if tag is None:
            return (404, "not found") if self.gen_index(name) is None else (403, "generated tags are read-only")
        if not tag.writable:
            return 403, f"{name} is read-only"
        t = tag.type
        ok_type = (
            isinstance(value, bool)
            if t is DataType.bool
            else isinstance(value, int)
            and not isinstance(value, bool)
            or isinstance(value, float)
            and value.is_integer()
            if t in INT_RANGE
            else isinstance(value, (int, float)) and not isinstance(value, bool)
            if t in (DataType.float, DataType.double)
            else isinstance(value, str)
        )
        if not ok_type:
            return 400, f"type mismatch: {type(value).__name__} for {t.value}"
        if t is DataType.datetime:
            try:
                datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                return 400, "type mismatch: not an ISO 8601 time"
        if t in INT_RANGE:
            value = int(value)
            lo, hi = INT_RANGE[t]
            if not lo <= value <= hi:
                return 400, f"out of range: {value} does not fit {t.value}"
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if (tag.low is not None and value < tag.low) or (tag.high is not None and value > tag.high):
                return 400, f"out of range: {value} outside {tag.low}..{tag.high}"
        self.set(name, float(value) if t in (DataType.float, DataType.double) else value)
        return 200, ""

    def set(self, name: str, value: Any, quality: int | None = None) -> None:
        tag = self.tags[name]
        tag.value = value
        if quality is not None:
            tag.quality = quality
        tag.timestamp = datetime.now(UTC)

    # ---- dynamics ------------------------------------------------------------------------------------------
    def tick(self, dt: float) -> None:
        self._tick_n += 1
        t = self.tags
        now = datetime.now(UTC)
        level = t["System1.Tank1.Level"]
        inflow = 0.4 if t["System1.Tank1.InletValve"].value else 0.0
        outflow = 0.3 if t["System1.Tank1.OutletValve"].value else 0.0
        self._sim_s += dt
        self._disturb()
        if self._sim_s < self._draining_until:
            outflow += 0.25  # the overfilled tank's relief drain
        if level.value >= t["System1.Tank1.LevelSetpoint"].value:
            inflow = 0.0  # the level controller closes the feed at its setpoint
        wobble = 0.01 * math.sin(self._tick_n / 3)
        new_level = min(10.0, max(0.0, level.value + (inflow - outflow) * dt + wobble))
        self._update(level, round(new_level, 4), now)
        speed = t["System1.Pump1.Speed"]
        sp = t["System1.Pump1.SpeedSetpoint"].value if t["System1.Pump1.Running"].value else 0.0
        self._update(
            speed, round(speed.value + (sp - speed.value) * min(1.0, dt) * 0.5 + math.sin(self._tick_n) * 0.5, 2), now
        )
        temp = t["System1.Reactor.Temperature"]
        target = t["System1.Reactor.TemperatureSetpoint"].value
        noise = 0.05 * math.sin(self._tick_n * 1.7 + self.seed)
        self._update(temp, round(temp.value + (target - temp.value) * 0.05 * dt + noise, 4), now)
        hall = t["System1.Hall 2.Temperatur Außen"]
        self._update(hall, round(12.5 + 3 * math.sin(self._tick_n / 50), 3), now)
        self._alarms(now)

    def _update(self, tag: Tag, value: Any, now: datetime) -> None:
        if value != tag.value:
            tag.value, tag.timestamp = value, now
        if tag.archived:
            tag.history.append((now, tag.value, tag.quality))

    def _disturb(self) -> None:
        """The demo's self-made trouble: one disturbance at a time, on average alarms_per_minute of them."""
        if self._sim_s < self._next_disturbance:
            return
        self._next_disturbance = self._sim_s + max(5.0, self._rng.expovariate(self.alarms_per_minute / 60))
        t, kind = self.tags, self._rng.randrange(3)
        if kind == 0:
            self.set("System1.Reactor.Temperature", 185.0 + self._rng.uniform(0, 10))  # cools back in seconds
        elif kind == 1:
            self.set("System1.Tank1.Level", 9.5)
            self._draining_until = self._sim_s + 8
        else:
            self._trip_until = self._sim_s + self._rng.uniform(4, 10)
        running = t["System1.Pump1.Running"]
        if kind == 2 and running.value:
            self.set("System1.Pump1.Running", False)

    def add_alarms(self, count: int) -> list[str]:
        """Define `count` more alarms (ids G1.., each on a generated tag if there are any), inactive."""
        start = sum(1 for a in self.alarms if a.startswith("G"))
        demo = list(self.tags)
        ids = []
        for n in range(start + 1, start + count + 1):
            tag = self.gen_name((n - 1) % self.generated, "dp") if self.generated else demo[n % len(demo)]
            self.alarms[f"G{n}"] = Alarm(f"G{n}", tag, f"Generated alarm {n}", "Alarm", 1 + n % 1000)
            ids.append(f"G{n}")
        return ids

    def _alarms(self, now: datetime) -> None:
        t = self.tags
        running = t["System1.Pump1.Running"]
        if self._trip_until and self._sim_s >= self._trip_until:
            self._trip_until = 0.0
            if not running.value:
                self.set("System1.Pump1.Running", True)
        conditions = {
            "1001": t["System1.Tank1.Level"].value > 9,
            "1002": t["System1.Reactor.Temperature"].value > 180,
            "1003": (not t["System1.Pump1.Running"].value) and t["System1.Pump1.SpeedSetpoint"].value > 0,
        }
        for alarm_id, active in conditions.items():
            self.set_alarm(alarm_id, self.forced_alarms.get(alarm_id, active), now)

    def set_alarm(self, alarm_id: str, active: bool, now: datetime | None = None) -> None:
        alarm = self.alarms[alarm_id]
        if alarm.active == active:
            return
        now = now or datetime.now(UTC)
        alarm.active, alarm.timestamp = active, now
        tag = self.tags.get(alarm.tag)
        alarm.value = tag.value if tag is not None else None
        if active:
            alarm.acknowledged = False
        self.alarm_log.append(self.alarm_entry(alarm, "came" if active else "went"))
        del self.alarm_log[:-10_000]

    def acknowledge(self, alarm_id: str, user: str | None = None, comment: str | None = None) -> int:
        """200, 404 (unknown) or 409 (already acknowledged). The log entry keeps who acknowledged and why."""
        alarm = self.alarms.get(alarm_id)
        if alarm is None:
            return 404
        if alarm.acknowledged:
            return 409
        alarm.acknowledged = True
        entry = self.alarm_entry(alarm, "came" if alarm.active else "went")
        entry["timestamp"] = iso(datetime.now(UTC))
        if user is not None:
            entry["user"] = user
        if comment is not None:
            entry["comment"] = comment
        self.alarm_log.append(entry)
        return 200

    def alarm_entry(self, alarm: Alarm, state: str) -> dict[str, Any]:
        return {
            "id": alarm.id,
            "dp": alarm.tag,
            "text": alarm.text,
            "class": alarm.alarm_class,
            "priority": alarm.priority,
            "state": state,
            "acknowledged": alarm.acknowledged,
            "timestamp": iso(alarm.timestamp),
            "value": alarm.value,
        }

    def active_alarms(self) -> list[Alarm]:
        return [a for a in self.alarms.values() if a.active or not a.acknowledged]

    # ---- archive -------------------------------------------------------------------------------------------
    def archive(self, name: str, start: datetime, end: datetime, limit: int) -> list[tuple[datetime, Any, int]] | None:
        tag = self.tags.get(name)
        if tag is not None:
            if not tag.archived:
                return None
            times = [h[0] for h in tag.history]
            lo = bisect.bisect_left(times, start)
            hi = bisect.bisect_right(times, end)
            return tag.history[lo : min(hi, lo + limit)]
        i = self.gen_index(name)
        if i is None or i % 10:
            return None
        return self.gen_archive(i, start, end, limit)

    def dp_names(self) -> list[str]:
        return list(self.tags)

    def tag_count(self) -> int:
        return len(self.tags) + self.generated - len(self.removed_generated)
