"""One A&C client in its own process: subscribes to the Server object's events, then either calls ConditionRefresh
and times it, or counts condition events for a while.

    python -m bench.alarm_client --endpoint URL refresh            -> {"refresh_s", "conditions", "markers"}
    python -m bench.alarm_client --endpoint URL count --seconds S  -> {"events"}  (prints "start" when counting)

The event filter selects what an alarm client shows (EventType, WinCCAlarmId, Retain, ActiveState/Id, Severity).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from asyncua import Client, ua

O = ua.ObjectIds
FIELDS = ["EventType", "WinCCAlarmId", "Retain", "ActiveState/Id", "Severity"]


def _filter() -> ua.EventFilter:
    clauses = []
    for name in FIELDS:
        op = ua.SimpleAttributeOperand()
        op.TypeDefinitionId = ua.NodeId(O.BaseEventType)
        op.BrowsePath = [ua.QualifiedName(p, 0) for p in name.split("/")]
        op.AttributeId = ua.AttributeIds.Value
        clauses.append(op)
    return ua.EventFilter(SelectClauses=clauses)


class Handler:
    def __init__(self) -> None:
        self.conditions = 0
        self.markers: list[tuple[int, float]] = []
        self.end = asyncio.Event()

    def event_notification(self, event: Any) -> None:
        etype = event.EventType
        if etype == ua.NodeId(O.AlarmConditionType):
            self.conditions += 1
        elif etype in (ua.NodeId(O.RefreshStartEventType), ua.NodeId(O.RefreshEndEventType)):
            self.markers.append((etype.Identifier, time.monotonic()))
            if etype == ua.NodeId(O.RefreshEndEventType):
                self.end.set()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    async with Client(args.endpoint, timeout=30) as client:
        handler = Handler()
        sub = await client.create_subscription(100, handler)
        await sub.subscribe_events(O.Server, evfilter=_filter(), queuesize=0)
        if args.mode == "refresh":
            await asyncio.sleep(2)  # let any events of the poll before the refresh arrive first
            handler.conditions = 0
            print("calling", flush=True)
            t0 = time.monotonic()
            await client.uaclient.call(
                [
                    ua.CallMethodRequest(
                        ObjectId=ua.NodeId(O.ConditionType),
                        MethodId=ua.NodeId(O.ConditionType_ConditionRefresh),
                        InputArguments=[ua.Variant(sub.subscription_id, ua.VariantType.UInt32)],
                    )
                ]
            )
            await asyncio.wait_for(handler.end.wait(), 60)
            return {
                "refresh_s": handler.markers[-1][1] - t0,
                "conditions": handler.conditions,
                "markers": [m[0] for m in handler.markers],
            }
        await asyncio.sleep(1)
        handler.conditions = 0
        print("start", flush=True)
        await asyncio.sleep(args.seconds)
        return {"events": handler.conditions}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(prog="python -m bench.alarm_client")
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("mode", choices=["refresh", "count"])
    ap.add_argument("--seconds", type=float, default=10)
    print(json.dumps(asyncio.run(main(ap.parse_args()))), flush=True)
