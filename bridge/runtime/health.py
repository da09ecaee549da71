"""/healthz, /readyz and /metrics over HTTP for Docker, Kubernetes and Prometheus.

- /healthz: the process is alive and its event loop answers (200).
- /readyz: the OPC UA endpoint is serving and the address space is built (200), else 503 with the reason.
  WinCC being unreachable does not make the bridge unready: it serves Bad status and recovers by itself,
  and restarting it would not help. The connection state is reported in the body and in /metrics.
- /metrics: Prometheus text from a registry owned by this bridge (no global registry), filled at scrape
  time from a snapshot function so the hot paths never touch Prometheus objects.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.runtime.embedded_http import EmbeddedServer

__all__ = ["HealthServer", "HealthSnapshot"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HealthSnapshot:
    serving: bool
    address_space_built: bool
    wincc_connected: bool
    tags: int
    gauges: dict[str, float] = field(default_factory=dict)  # name -> value, exported as wincc_bridge_<name>
    counters: dict[str, float] = field(default_factory=dict)  # name -> value, exported as wincc_bridge_<name>_total
    # name -> (label, {label value -> count}), exported as wincc_bridge_<name>_total{<label>="<value>"}
    labelled_counters: dict[str, tuple[str, dict[str, float]]] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return self.serving and self.address_space_built


class _SnapshotCollector(Collector):
    def __init__(self, snapshot: Callable[[], HealthSnapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        s = self._snapshot()
        yield GaugeMetricFamily("wincc_bridge_up", "OPC UA endpoint serving", value=float(s.serving))
        yield GaugeMetricFamily("wincc_bridge_wincc_connected", "WinCC REST reachable", value=float(s.wincc_connected))
        yield GaugeMetricFamily("wincc_bridge_tags", "tags in the address space", value=float(s.tags))
        for name, value in sorted(s.gauges.items()):
            yield GaugeMetricFamily(f"wincc_bridge_{name}", name.replace("_", " "), value=float(value))
        for name, value in sorted(s.counters.items()):
            yield CounterMetricFamily(f"wincc_bridge_{name}", name.replace("_", " "), value=float(value))
        for name, (label, values) in sorted(s.labelled_counters.items()):
            family = CounterMetricFamily(f"wincc_bridge_{name}", f"{name.replace('_', ' ')} by {label}", labels=[label])
            for label_value, value in sorted(values.items()):
                family.add_metric([label_value], float(value))
            yield family


class HealthServer:
    def __init__(self, listen: str, snapshot: Callable[[], HealthSnapshot]) -> None:
        host, _, port = listen.rpartition(":")
        self._host = host.strip("[]") or "0.0.0.0"
        self._port = int(port)
        self._snapshot = snapshot
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(_SnapshotCollector(snapshot))
        app = Starlette(
            routes=[
                Route("/healthz", self._healthz),
                Route("/readyz", self._readyz),
                Route("/metrics", self._metrics),
            ]
        )
        self._server = EmbeddedServer(
            uvicorn.Config(app, host=self._host, port=self._port, log_config=None, access_log=False, lifespan="off")
        )
        self._task: asyncio.Task[None] | None = None

    async def _healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def _readyz(self, request: Request) -> Response:
        s = self._snapshot()
        body = {
            "ready": s.ready,
            "serving": s.serving,
            "address_space_built": s.address_space_built,
            "wincc_connected": s.wincc_connected,
            "tags": s.tags,
        }
        return JSONResponse(body, status_code=200 if s.ready else 503)

    async def _metrics(self, request: Request) -> Response:
        return Response(generate_latest(self._registry), media_type=CONTENT_TYPE_LATEST)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve(), name="health-http")
        while not self._server.started:
            if self._task.done():
                exc = self._task.exception()
                raise OSError(f"health endpoint cannot listen on {self._host}:{self._port}: {exc or 'startup failed'}")
            await asyncio.sleep(0.02)
        log.info("health endpoint on http://%s:%d (/healthz /readyz /metrics)", self._host, self._port)

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.request_exit()
        try:
            await asyncio.wait_for(self._task, timeout=5)
        except (TimeoutError, asyncio.CancelledError):
            self._task.cancel()
        self._task = None
