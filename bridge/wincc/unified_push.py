"""Value changes pushed by WinCC Unified: `tagValues` subscriptions over one graphql-transport-ws WebSocket.

`TagPush.want(names)` says which tags should be pushed (the sync engine passes the monitored ones); the push keeps
one subscription per batch of names and tells, through `covered`, which tags it is delivering right now. A tag is
covered from its first notification (ADDED, its current value) on a live socket until the socket drops or the
tag is no longer wanted; everything not covered is polled by the sync engine. A dropped socket is reconnected with
backoff and every batch is subscribed again. `AlarmPush` does the same for alarm changes with the `activeAlarms`
subscription on a socket of its own, reading the active list once over HTTP after each subscribe (Unified never
says when the alarms already active have all been notified). See docs/wincc-rest-api.md, section Unified.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

import orjson
import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from bridge.runtime.backoff import Backoff
from bridge.wincc.client import AlarmNews
from bridge.wincc.errors import WinCCError
from bridge.wincc.models import Alarm, TagError, TagErrorKind, TagValue
from bridge.wincc.unified_wire import SUBSCRIBE_ACTIVE_ALARMS, SUBSCRIBE_TAG_VALUES, alarm_from_unified, parse_tag_item

if TYPE_CHECKING:
    from bridge.config import WinCCConfig
    from bridge.wincc.unified import UnifiedClient

__all__ = ["AlarmPush", "TagPush", "ws_url"]

log = logging.getLogger(__name__)

OnValues = Callable[[dict[str, TagValue | TagError]], Awaitable[None]]
_PROTOCOL = "graphql-transport-ws"
_ACK_TIMEOUT_S = 10.0
_BAD_TOKEN = 4403
_HOLD_S = 0.02  # messages handled back to back for this long, then the event loop gets a turn
_GAP_S = 0.001  # this long between two messages: the loop had a turn (or the socket waited) in between


def ws_url(config: WinCCConfig) -> str:
    """`wincc.ws_url`, or the HTTP endpoint with ws/wss for http/https."""
    if config.ws_url:
        return config.ws_url
    url = config.url
    if url.startswith("https://"):
        return "wss://" + url[len("https://") :]
    if url.startswith("http://"):
        return "ws://" + url[len("http://") :]
    return url


def _tls(config: WinCCConfig, url: str) -> ssl.SSLContext | None:
    if not url.startswith("wss://"):
        return None
    context = ssl.create_default_context(cafile=str(config.tls.ca_file) if config.tls.ca_file else None)
    if not config.tls.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class _Subscriber:
    """One graphql-transport-ws WebSocket kept open: connect with the session token, `connection_init` / ack, then
    `_serve` until the socket drops; reconnect with backoff. Subclasses say what they subscribe and handle."""

    _what = "values"  # in log lines: what is polled while the socket is down

    def __init__(self, client: UnifiedClient, config: WinCCConfig) -> None:
        self._client = client
        self._url = ws_url(config)
        self._tls = _tls(config, self._url)
        self._backoff = Backoff(base_s=max(config.retry.backoff_s or 0.5, 0.05), cap_s=config.retry.max_backoff_s)
        self._ids = itertools.count(1)
        self._task: asyncio.Task[None] | None = None
        self.connected = False
        self.reconnects = 0
        self.notifications = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"wincc-unified-push-{self._what}")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        what = self._what
        while True:
            try:
                await self._connect_once()
            except asyncio.CancelledError:
                raise
            except websockets.exceptions.InvalidStatus as exc:
                log.warning(
                    "WinCC Unified WebSocket refused (HTTP %s); %s are polled meanwhile", exc.response.status_code, what
                )
            except websockets.exceptions.ConnectionClosed as exc:
                if exc.rcvd is not None and exc.rcvd.code == _BAD_TOKEN:
                    self._client.invalidate_session()
                log.warning(
                    "WinCC Unified WebSocket closed (%s); %s are polled until it is back",
                    exc.rcvd.code if exc.rcvd else "no close frame",
                    what,
                )
            except WinCCError as exc:  # the login before connecting
                log.warning("WinCC Unified: no session for the WebSocket (%s); %s are polled meanwhile", exc, what)
            except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
                log.warning(
                    "WinCC Unified WebSocket failed (%s); %s are polled until it is back", type(exc).__name__, what
                )
            except Exception:  # a bug must not end pushing for good
                log.exception("WinCC Unified WebSocket: unexpected error")
            finally:
                self.connected = False
                self._lost()
            await asyncio.sleep(self._backoff.next())

    def _lost(self) -> None:
        raise NotImplementedError

    async def _serve(self, ws: ClientConnection) -> None:
        raise NotImplementedError

    @staticmethod
    async def _messages(ws: ClientConnection) -> AsyncIterator[dict[str, Any]]:
        """The socket's messages, parsed. Messages already received come one after the other without a turn of the
        event loop in between: the first values of 100 batches of 1,000 tags held it for 0.2 s (bench/README.md,
        worst lag). So after _HOLD_S of handling such a run the loop gets a turn; a gap between two messages means
        it had one (or the socket waited)."""
        clock = time.perf_counter
        run_from = done = clock()
        async for raw in ws:
            now = clock()
            if now - done > _GAP_S:
                run_from = now
            yield orjson.loads(raw)  # the caller handles it before this goes on
            done = clock()
            if done - run_from > _HOLD_S:
                await asyncio.sleep(0)
                run_from = done = clock()

    async def _connect_once(self) -> None:
        token = await self._client.ensure_session()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with connect(
            self._url,
            subprotocols=[Subprotocol(_PROTOCOL)],
            additional_headers=headers,
            ssl=self._tls,
            open_timeout=_ACK_TIMEOUT_S,
            max_size=None,
            compression=None,
        ) as ws:
            await ws.send(orjson.dumps({"type": "connection_init", "payload": headers}).decode())
            ack = orjson.loads(await asyncio.wait_for(ws.recv(), _ACK_TIMEOUT_S))
            if ack.get("type") != "connection_ack":
                raise websockets.exceptions.InvalidMessage(f"expected connection_ack, got {ack.get('type')!r}")
            log.info("WinCC Unified WebSocket connected; %s are pushed", self._what)
            self.connected = True
            try:
                await self._serve(ws)
            finally:
                self.reconnects += 1


class TagPush(_Subscriber):
    """Keeps the wanted tags subscribed; delivers each notification to `on_values`; calls `on_covered_changed`
    whenever the set of pushed tags changes (so the poller can take tags on or off)."""

    def __init__(
        self,
        client: UnifiedClient,
        config: WinCCConfig,
        on_values: OnValues,
        on_covered_changed: Callable[[], None],
        *,
        batch_size: int = 1000,
    ) -> None:
        super().__init__(client, config)
        self._on_values = on_values
        self._on_covered_changed = on_covered_changed
        self._batch_size = batch_size
        self._wanted: set[str] = set()
        self._batches: dict[str, list[str]] = {}  # subscription id -> its names
        self._subscribed: dict[str, str] = {}  # name -> subscription id
        self._covered: set[str] = set()
        self._refused: set[str] = set()  # names a subscription error refused on this connection: polled instead
        self._changed = asyncio.Event()

    @property
    def covered(self) -> frozenset[str]:
        return frozenset(self._covered)

    @property
    def covered_count(self) -> int:
        return len(self._covered)

    def covers(self, name: str) -> bool:
        return name in self._covered

    def want(self, names: Iterable[str]) -> None:
        wanted = set(names)
        if wanted != self._wanted:
            self._wanted = wanted
            self._changed.set()

    def _lost(self) -> None:
        had = bool(self._covered)
        self._batches.clear()
        self._subscribed.clear()
        self._covered.clear()
        self._refused.clear()
        if had:
            self._on_covered_changed()

    async def _serve(self, ws: ClientConnection) -> None:
        self._backoff.reset()
        self._changed.set()
        reconcile = asyncio.create_task(self._keep_subscriptions(ws))
        try:
            async for message in self._messages(ws):
                await self._handle(ws, message)
        finally:
            reconcile.cancel()
            await asyncio.gather(reconcile, return_exceptions=True)

    async def _keep_subscriptions(self, ws: ClientConnection) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            await self._reconcile(ws)

    async def _reconcile(self, ws: ClientConnection) -> None:
        wanted = self._wanted
        stale = {self._subscribed[n] for n in self._subscribed.keys() - wanted}
        keep: list[str] = []
        for sub_id in stale:  # a batch losing names is replaced by one without them
            names = self._batches.pop(sub_id)
            await ws.send(orjson.dumps({"id": sub_id, "type": "complete"}).decode())
            for name in names:
                del self._subscribed[name]
                if name in wanted:
                    keep.append(name)  # stays covered: the new subscription's ADDED brings its value again
                else:
                    self._covered.discard(name)
        missing = [n for n in wanted if n not in self._subscribed and n not in self._refused]
        fresh = keep + sorted(missing)
        for i in range(0, len(fresh), self._batch_size):
            batch = fresh[i : i + self._batch_size]
            sub_id = str(next(self._ids))
            self._batches[sub_id] = batch
            for name in batch:
                self._subscribed[name] = sub_id
            message = {
                "id": sub_id,
                "type": "subscribe",
                "payload": {"query": SUBSCRIBE_TAG_VALUES, "variables": {"names": batch}},
            }
            await ws.send(orjson.dumps(message).decode())
            await asyncio.sleep(0)  # a big subscribe must not hold the loop
        if stale:
            self._on_covered_changed()

    async def _handle(self, ws: ClientConnection, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "next":
            sub_id = str(message.get("id"))
            if sub_id not in self._batches:
                return  # a late notification of a completed batch
            payload = message.get("payload") or {}
            item = ((payload.get("data") or {}).get("tagValues")) if isinstance(payload, dict) else None
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                return
            name = item["name"]
            self.notifications += 1
            reason = str(item.get("notificationReason") or "").upper()
            result: TagValue | TagError
            if reason.startswith("REMOVED"):
                result = TagError(name, "removed in WinCC", TagErrorKind.not_found)
            else:
                result = parse_tag_item(name, item)
            if name not in self._covered and self._subscribed.get(name) == sub_id:
                self._covered.add(name)
                self._on_covered_changed()
            await self._on_values({name: result})
        elif kind == "error":
            sub_id = str(message.get("id"))
            names = self._batches.pop(sub_id, [])
            for name in names:
                self._subscribed.pop(name, None)
                self._covered.discard(name)
                self._refused.add(name)
            log.warning(
                "WinCC Unified refused a subscription of %d tags (%s); they are polled",
                len(names),
                _error_text(message.get("payload")),
            )
            self._on_covered_changed()
        elif kind == "ping":
            await ws.send('{"type":"pong"}')
        elif kind == "complete":
            names = self._batches.pop(str(message.get("id")), [])
            for name in names:
                self._subscribed.pop(name, None)
                self._covered.discard(name)
            if names:
                self._changed.set()  # the server ended it: subscribe again
                self._on_covered_changed()


class AlarmPush(_Subscriber):
    """The `activeAlarms` subscription on its own socket. Unified sends one alarm per notification (ADDED: it entered
    the subscription, which every alarm active when the subscription is made does too; MODIFIED; REMOVED: it left),
    and never says when the alarms that were already active have all been sent. So after each (re)subscribe the
    active list is read once over HTTP, as a poll reads it, and delivered as `AlarmNews.complete`: the consumer
    reconciles it, so an alarm that went while the socket was down is cleared and none is announced twice.
    Notifications that arrive while that read is under way are held and delivered after it, in order; each carries
    the alarm's whole state, so one the list already shows changes nothing. `live` from then until the socket drops
    or the subscription ends: meanwhile the alarm service polls `activeAlarms` instead."""

    _what = "alarms"

    def __init__(
        self,
        client: UnifiedClient,
        config: WinCCConfig,
        on_alarms: Callable[[AlarmNews], Awaitable[None]],
        on_live_changed: Callable[[], None],
    ) -> None:
        super().__init__(client, config)
        self._on_alarms = on_alarms
        self._on_live_changed = on_live_changed
        self._sub_id: str | None = None
        self._held: list[Any] | None = None  # notifications while the active list is read; None: deliver at once
        self._listing: asyncio.Task[None] | None = None
        self._live = False
        self._refused = False
        self.list_reads = 0  # active lists read over HTTP: one per (re)subscribe

    @property
    def live(self) -> bool:
        return self._live

    def _set_live(self, live: bool) -> None:
        if live != self._live:
            self._live = live
            self._on_live_changed()

    def _lost(self) -> None:
        self._sub_id = None
        self._stop_listing()
        self._set_live(False)

    def _stop_listing(self) -> None:
        if self._listing is not None:
            self._listing.cancel()
            self._listing = None
        self._held = None

    async def _subscribe(self, ws: ClientConnection) -> None:
        self._stop_listing()
        self._sub_id, self._held = str(next(self._ids)), []
        message = {"id": self._sub_id, "type": "subscribe", "payload": {"query": SUBSCRIBE_ACTIVE_ALARMS}}
        await ws.send(orjson.dumps(message).decode())
        # the list is read after the subscribe went out: whatever changes from here on is also notified
        self._listing = asyncio.create_task(self._read_list(ws), name="wincc-unified-active-alarms")

    async def _read_list(self, ws: ClientConnection) -> None:
        try:
            alarms = await self._client.active_alarms()
            self.list_reads += 1
            self._backoff.reset()
            self._refused = False
            await self._on_alarms(AlarmNews(alarms, [], complete=True))
            while self._held:  # what came meanwhile, then anything that came while that was delivered
                held, self._held = self._held, []
                await self._deliver(held)
        except WinCCError as exc:
            log.warning("WinCC Unified: reading the active alarms after subscribing failed (%s): alarms polled", exc)
            await ws.close()  # the reconnect's backoff paces the next try
            return
        except Exception:  # a bug must not leave the push half-started: start over on a new socket
            log.exception("WinCC Unified: applying the active alarms failed")
            await ws.close()
            return
        self._held = None
        self._listing = None
        self._set_live(True)

    async def _serve(self, ws: ClientConnection) -> None:
        try:
            await self._subscribe(ws)
            async for message in self._messages(ws):
                kind = message.get("type")
                if kind == "ping":
                    await ws.send('{"type":"pong"}')
                elif str(message.get("id")) != self._sub_id:
                    continue
                elif kind == "next":
                    entries = _alarm_entries(message.get("payload"))
                    if self._held is not None:
                        self._held.extend(entries)
                    else:
                        await self._deliver(entries)
                elif kind == "error":
                    # closing the socket here: the reconnect's backoff (not reset before a list was read) keeps a
                    # server that refuses the subscription from being asked again at once
                    log.log(
                        logging.DEBUG if self._refused else logging.WARNING,
                        "WinCC Unified refused the activeAlarms subscription (%s); alarms are polled",
                        _error_text(message.get("payload")),
                    )
                    self._refused = True  # said once until a subscription delivers again
                    return
                elif kind == "complete":
                    self._set_live(False)
                    await self._subscribe(ws)  # the server ended it: subscribe again, read the list again
        finally:
            self._stop_listing()

    async def _deliver(self, entries: list[Any]) -> None:
        alarms: list[Alarm] = []
        gone: list[str] = []
        for entry in entries:
            self.notifications += 1
            try:
                alarm = alarm_from_unified(entry)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                log.warning("activeAlarms notification: skipping an alarm: %s", exc)
                continue
            if alarm is None:
                continue
            if str(entry.get("notificationReason") or "").upper().startswith("REMOVED"):
                gone.append(alarm.id)
            else:
                alarms.append(alarm)
        if alarms or gone:
            await self._on_alarms(AlarmNews(alarms, gone, complete=False))


def _alarm_entries(payload: Any) -> list[Any]:
    """The alarms of one `next`: Unified sends one ActiveAlarmNotification object; a list is taken as well."""
    data = payload.get("data") if isinstance(payload, dict) else None
    raw = data.get("activeAlarms") if isinstance(data, dict) else None
    if isinstance(raw, dict):
        return [raw]
    if isinstance(raw, list):
        return [e for e in raw if isinstance(e, dict)]
    log.warning("activeAlarms notification without data.activeAlarms: skipped")
    return []


def _error_text(payload: Any) -> str:
    if isinstance(payload, list):
        return "; ".join(str(e.get("message")) for e in payload if isinstance(e, dict))[:200] or "no reason"
    return "no reason"
