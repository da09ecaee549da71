"""Benchmark results: every figure sampled once per run, reported as the median and the spread over the runs.

A goal is judged in code, not by eye: `Goal.verdict` says "met" only when the margin between the median and the
limit exceeds the spread of the runs (max - min), "not met" when the median is on the wrong side by more than the
spread, and "within spread" otherwise. One run has no spread, so nothing measured once is called met.
"""

from __future__ import annotations

import statistics
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Goal:
    """`on` (the ratio or the bridge's own figure) must be `op` `limit`, e.g. Goal("ratio", "<=", 2.0)."""

    on: Literal["ratio", "bridge"]
    op: Literal["<=", ">="]
    limit: float

    def __str__(self) -> str:
        return f"{'ratio' if self.on == 'ratio' else 'bridge'} {self.op} {self.limit:g}"

    def verdict(self, samples: list[float]) -> str:
        if not samples:
            return "no figure"
        if len(samples) < 2:
            return "1 run: not judged"
        median, spread = statistics.median(samples), max(samples) - min(samples)
        margin = self.limit - median if self.op == "<=" else median - self.limit
        if margin > spread or (spread == 0 and margin >= 0):  # equal runs (a count of 0) have nothing to exceed
            return "met"
        if -margin > spread:
            return "not met"
        return "within spread"


@dataclass
class Row:
    scenario: str
    metric: str
    unit: str = ""
    goal: Goal | str | None = None
    bridge: list[float] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)
    ratio: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"scenario": self.scenario, "metric": self.metric, "unit": self.unit, "runs": {}}
        for name in ("bridge", "baseline", "ratio"):
            values = getattr(self, name)
            out[name] = _stats(values)
            out["runs"][name] = values
        if isinstance(self.goal, Goal):
            values = self.ratio if self.goal.on == "ratio" else self.bridge
            out["goal"], out["verdict"] = str(self.goal), self.goal.verdict(values)
        else:
            out["goal"], out["verdict"] = self.goal or "", ""
        return out


def _stats(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "spread": max(values) - min(values),
        "n": len(values),
    }


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if abs(v) >= 10_000:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def _cell(stats: dict[str, float] | None) -> str:
    if stats is None:
        return ""
    if stats["n"] < 2:
        return _fmt(stats["median"])
    return f"{_fmt(stats['median'])} ({_fmt(stats['min'])}-{_fmt(stats['max'])})"


class Results:
    """Rows keyed by (scenario, metric); each run's scenario calls `add` once per row."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], Row] = {}
        self.failures: list[dict[str, str]] = []

    def add(
        self,
        scenario: str,
        metric: str,
        bridge: float | None,
        baseline: float | None = None,
        unit: str = "",
        goal: Goal | str | None = None,
    ) -> None:
        row = self.rows.setdefault((scenario, metric), Row(scenario, metric, unit, goal))
        ratio = bridge / baseline if bridge is not None and baseline not in (None, 0) else None
        for name, value in (("bridge", bridge), ("baseline", baseline), ("ratio", ratio)):
            if value is not None:
                getattr(row, name).append(float(value))
        print(
            f"  {scenario:<26} {metric:<40} bridge {_fmt(bridge):>10} {unit:<6} base {_fmt(baseline):>10}"
            f"  ratio {_fmt(ratio):>6}",
            flush=True,
        )

    def failed(self, scenario: str, error: str) -> None:
        self.failures.append({"scenario": scenario, "error": error})
        print(f"  {scenario:<26} FAILED {error}", flush=True)

    def summary(self) -> list[dict[str, Any]]:
        return [row.summary() for row in self.rows.values()]

    def markdown(self, header: dict[str, Any]) -> str:
        lines = [
            f"Run of {header['date']}, commit {header['commit']}{' (dirty)' if header['dirty'] else ''}, "
            f"{header['machine']}, {header['repeat']} run(s) per scenario. Cells: median (min-max over the runs); "
            "ratio = bridge / baseline of the same run, median over runs. A goal is met only where its margin "
            "exceeds the spread (bench/results.py).",
        ]
        if header.get("note"):
            lines.append(f"\n**{header['note']}**")
        lines += [
            "",
            "| scenario | metric | unit | bridge | baseline | ratio | goal | verdict |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for s in self.summary():
            lines.append(
                f"| {s['scenario']} | {s['metric']} | {s['unit']} | {_cell(s['bridge'])} | "
                f"{_cell(s['baseline'])} | {_cell(s['ratio'])} | {s['goal']} | {s['verdict']} |"
            )
        for f in self.failures:
            lines.append(f"| {f['scenario']} | FAILED | | | | | | {f['error'][:200]} |")
        return "\n".join(lines) + "\n"


def commit() -> tuple[str, bool]:
    """The commit measured and whether the work tree differs from it (a dirty tree is not that commit)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=10", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown", True
    return head, dirty
