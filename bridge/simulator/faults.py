"""Fault injection state: which faults are on, checked once when set so a bad spec is refused, never half-applied.

One `Faults` object is shared by the HTTP app (POST /_sim/faults) and the in-process API (`sim.faults.set(...)`);
both go through `set`, so every mode works the same either way. Several modes can be on at once; setting a mode
again replaces its spec. The modes are listed in the docstring of `bridge.simulator.app`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["MODES", "Faults"]

# mode -> what its spec may carry besides "mode"
MODES: dict[str, str] = {
    "down": "",
    "slow": "latency_ms",
    "unauthorized": "",
    "error500": "",
    "malformed": "",
    "partial": "tags",
    "forbidden": "",
    "write_errors": "tags",
    "ws_down": "",  # unified: WebSockets closed and refused, HTTP answers
}
_ONE_SHOT = "expire_sessions"


def _write_error(name: str, spec: Any) -> dict[str, Any]:
    """Check one write_errors entry: {"status": N, "error": text} or {"errorCode": N, "errorDescription": text}."""
    if not isinstance(spec, dict) or not ("status" in spec or "errorCode" in spec):
        raise ValueError(f"write_errors[{name!r}] needs a status or an errorCode")
    status, code = spec.get("status"), spec.get("errorCode")
    if status is not None and (type(status) is not int or not 400 <= status <= 599):
        raise ValueError(f"write_errors[{name!r}].status must be an HTTP error status (400..599)")
    if code is not None and (type(code) is not int or code == 0):
        raise ValueError(f"write_errors[{name!r}].errorCode must be a non-zero integer")
    for key in ("error", "errorDescription"):
        if not isinstance(spec.get(key, ""), str):
            raise ValueError(f"write_errors[{name!r}].{key} must be text")
    return dict(spec)


@dataclass
class Faults:
    modes: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Tokens issued before the last expiry are refused: `expire_sessions` and a restart bump it.
    session_epoch: int = 0

    def active(self, mode: str) -> dict[str, Any] | None:
        return self.modes.get(mode)

    def set(self, spec: dict[str, Any]) -> None:
        """Turn a fault on ({"mode": "none"} turns every fault off). ValueError for an unknown mode or a bad spec."""
        if not isinstance(spec, dict):
            raise ValueError("a fault is a JSON object with a mode")
        mode = spec.get("mode", "none")
        if mode == "none":
            self.modes.clear()
        elif mode == _ONE_SHOT:
            self.expire_sessions()
        elif mode not in MODES:
            raise ValueError(f"unknown fault mode {mode!r}; known: none, {_ONE_SHOT}, {', '.join(MODES)}")
        else:
            self.modes[mode] = self._checked(mode, spec)

    def clear(self) -> None:
        self.modes.clear()

    def expire_sessions(self) -> None:
        """Every token issued so far becomes invalid (once: logging in again works)."""
        self.session_epoch += 1

    # -- what the HTTP side asks ------------------------------------------------------------------------------

    def latency_s(self) -> float:
        spec = self.modes.get("slow")
        return 0.0 if spec is None else spec["latency_ms"] / 1000

    def failing(self) -> frozenset[str]:
        """Tags that fail inside batch answers (`partial`)."""
        spec = self.modes.get("partial")
        return frozenset() if spec is None else spec["tags"]

    def write_errors(self) -> dict[str, dict[str, Any]]:
        spec = self.modes.get("write_errors")
        return {} if spec is None else spec["tags"]

    @staticmethod
    def _checked(mode: str, spec: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": mode}
        if mode == "slow":
            latency = spec.get("latency_ms", 1000)
            if isinstance(latency, bool) or not isinstance(latency, (int, float)) or not 0 <= latency <= 600_000:
                raise ValueError("slow.latency_ms must be a number of milliseconds (0..600000)")
            out["latency_ms"] = latency
        elif mode == "partial":
            tags = spec.get("tags", [])
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise ValueError("partial.tags must be a list of tag names")
            out["tags"] = frozenset(tags)
        elif mode == "write_errors":
            tags = spec.get("tags")
            if not isinstance(tags, dict):
                raise ValueError("write_errors.tags must map tag names to {status, error} or "
                                 "{errorCode, errorDescription}")
            out["tags"] = {name: _write_error(name, s) for name, s in tags.items()}
        return out
