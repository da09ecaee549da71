"""Server/ServiceLevel (i=2267) from the reachability of the WinCC sources: a pure function.

Part 5 divides the byte into Maintenance (0), NoData (1), Degraded (2..199) and Healthy (200..255); redundant
clients and MES gateways switch servers on it. The bridge's rule:
- every source reachable: 255 (Healthy);
- no source reachable (or none configured): 1 (NoData);
- some reachable: Degraded, scaled by the share that answers, 2 + floor(197 * reachable / total), so one of two
  stations gives 100, nine of ten 179: always below 200, and higher the more of the plant is served.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["HEALTHY", "NO_DATA", "service_level"]

HEALTHY = 255
NO_DATA = 1
_DEGRADED_LOW = 2
_DEGRADED_SPAN = 197  # 2 + 197 = 199, the top of Degraded


def service_level(reachable: Sequence[bool]) -> int:
    total = len(reachable)
    up = sum(1 for r in reachable if r)
    if total == 0 or up == 0:
        return NO_DATA
    if up == total:
        return HEALTHY
    return _DEGRADED_LOW + (_DEGRADED_SPAN * up) // total
