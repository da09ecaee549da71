"""Touchpoint 10: the transport guard against hostile and idle TCP clients."""

from __future__ import annotations

import asyncio
import logging
import math
import struct
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from asyncua import Server, ua
from asyncua.common.connection import TransportLimits
from asyncua.common.utils import Buffer
from asyncua.server import binary_server_asyncio
from asyncua.server.binary_server_asyncio import OPCUAProtocol
from asyncua.server.internal_server import InternalServer
from asyncua.server.uaprocessor import UaProcessor
from asyncua.ua.ua_binary import (
    header_from_binary,
    struct_from_binary,
    uatcp_to_binary,
)

from bridge.opcua._asyncua.touchpoint import InstanceAttribute, Touchpoint

log = logging.getLogger(__name__)


# ---- 10. Transport guard: hostile and idle TCP clients -------------------------------------------------------------
# Why: asyncua 2.1's OPCUAProtocol.data_received appends every byte to one bytes object (quadratic) until the
# message its header announces is complete, checking the size only later and only for secure chunks: a HEL, or an
# OPN after a HEL, claiming 2 GB was buffered (+250 MB RSS, loop stalls of 3 s), garbage or an HTTP request was
# buffered forever, and a connection that never sent HEL stayed open. Its limits are one total (max_connections)
# and a 30 s activation watchdog. This protocol subclass checks each header as soon as its 8 bytes are in:
# the type (HEL first and once, then only OPN/MSG/CLO), the size (a HEL at most 8 + 20 + 4 + 4096 bytes, Part 6
# 7.1.2.3; any other chunk at most the receive buffer negotiated by the HEL), and the HEL's buffer sizes (at least
# 8192, Part 6 7.1.2.3); a violation answers an ERR message and closes. A connection must send HEL within
# `hello_timeout_s` and activate a session within `activation_timeout_s`; connections are capped per client address
# and in total. A chunk asyncua cannot decode closes the connection with an ERR (asyncua logged it and went on).
# Back-pressure: a connection stops being read while `_QUEUE_PAUSE` of its messages wait for the processor or while
# its client does not read the answers (asyncio's pause_writing), so neither side's buffers grow with what a client
# sends (a client sending GetEndpoints, 40x amplified, and never reading starved the event loop); and each message
# processed yields one turn of the loop, so a connection with a full queue cannot hold it against the others.
# Read against asyncua 2.1.0: binary_server_asyncio.OPCUAProtocol (iserver, transport, processor, messages,
# _activation_watchdog, _process_one_msg; BinaryServer._make_protocol looks the class up in the module),
# InternalServer.max_connections / max_pending_activation_seconds, Server.limits (TransportLimits).

MIN_BUFFER_SIZE = 8192  # Part 6 7.1.2.3: ReceiveBufferSize and SendBufferSize shall be at least 8192 bytes
_MAX_URL = 4096  # Part 6 7.1.2.3: EndpointUrl is at most 4096 bytes
_HELLO_MIN = 8 + 5 * 4 + 4  # header, five UInt32, an empty (or null) EndpointUrl
_HELLO_MAX = _HELLO_MIN + _MAX_URL
_SECURE_MIN = 12 + 4 + 8  # header with channel id, the smallest security header, sequence header
_HEADER = struct.Struct("<3scI")
_SECURE = frozenset((b"OPN", b"MSG", b"CLO"))
_QUEUE_PAUSE, _QUEUE_RESUME = 32, 8  # messages waiting for the processor: stop reading the socket / read again
S = ua.StatusCodes


@dataclass
class ConnectionGuard:
    """The limits of one server's TCP listener, and what they have refused (exported as metrics)."""

    hello_timeout_s: float
    activation_timeout_s: float
    max_connections: int
    max_connections_per_address: int
    open_by_address: Counter[str] = field(default_factory=Counter)
    refused: int = 0  # over the total or per-address cap
    timed_out: int = 0  # no HEL, or no activated session, in time
    rejected: int = 0  # malformed, oversized or out-of-order messages

    @property
    def open(self) -> int:
        return sum(self.open_by_address.values())

    def admit(self, host: str) -> bool:
        if self.open >= self.max_connections or self.open_by_address[host] >= self.max_connections_per_address:
            self.refused += 1
            return False
        self.open_by_address[host] += 1
        return True

    def release(self, host: str) -> None:
        self.open_by_address[host] -= 1
        if self.open_by_address[host] <= 0:
            del self.open_by_address[host]

    def metrics(self) -> dict[str, float]:
        return {
            "opcua_connections": float(self.open),
            "opcua_connections_refused_total": float(self.refused),
            "opcua_connections_timed_out_total": float(self.timed_out),
            "opcua_messages_rejected_total": float(self.rejected),
        }


def _host(peer: Any) -> str:
    return str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)


class GuardedProtocol(OPCUAProtocol):
    """OPCUAProtocol with the checks above; a server without a `connection_guard` gets asyncua's behaviour."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._guard: ConnectionGuard | None = getattr(self.iserver, "connection_guard", None)
        self._inbox = bytearray()
        self._hello_seen = False
        self._chunk_limit = 0  # the largest chunk the client may send, set by its HEL
        self._host: str | None = None  # set while this connection counts against the guard
        self._hello_timer: asyncio.TimerHandle | None = None
        self._paused: set[str] = set()  # why the socket is not being read: "queue", "writes"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        guard = self._guard
        if guard is None:
            return super().connection_made(transport)
        self.peer_name = transport.get_extra_info("peername")
        host = _host(self.peer_name)
        if not guard.admit(host):
            log.warning(
                "refusing connection from %s: %d open from that address, %d in all (limits %d, %d)",
                self.peer_name,
                guard.open_by_address[host],
                guard.open,
                guard.max_connections_per_address,
                guard.max_connections,
            )
            _send_error(transport, S.BadTcpServerTooBusy, "too many connections")
            transport.close()
            return
        self._host = host
        super().connection_made(transport)
        if self.transport is None:  # asyncua refused it after all
            self._release()
            return
        self._hello_timer = asyncio.get_running_loop().call_later(guard.hello_timeout_s, self._hello_overdue)

    def connection_lost(self, ex: BaseException | None) -> None:
        if self._hello_timer is not None:
            self._hello_timer.cancel()
        self._release()
        self._inbox = bytearray()
        super().connection_lost(ex)

    def _release(self) -> None:
        if self._host is not None and self._guard is not None:
            self._guard.release(self._host)
        self._host = None

    def _hello_overdue(self) -> None:
        if not self._hello_seen and self.transport is not None and not self.transport.is_closing():
            assert self._guard is not None
            self._guard.timed_out += 1
            self._refuse(S.BadTimeout, f"no HEL within {self._guard.hello_timeout_s:g} s", count=False)

    async def _activation_watchdog(self) -> None:
        # for the whole life of the connection, not only its start: a client that closes its session and keeps
        # the socket is closed too once it has been without an activated session that long
        timeout = self.iserver.max_pending_activation_seconds
        loop = asyncio.get_running_loop()
        without_since = loop.time()
        while self.transport is not None and not self.transport.is_closing():
            await asyncio.sleep(min(timeout, max(timeout / 4, 0.05)))
            session = self.processor.session if self.processor is not None else None
            if session is not None and session.is_activated():
                without_since = loop.time()
            elif loop.time() - without_since >= timeout:
                if self._guard is not None:
                    self._guard.timed_out += 1
                log.warning("closing connection from %s: no activated session for %.1f s", self.peer_name, timeout)
                self.transport.close()
                return

    def data_received(self, data: bytes) -> None:
        if self._guard is None:
            return super().data_received(data)
        if self.transport is None or self.transport.is_closing():
            return
        self._inbox += data
        self._parse()

    def _parse(self) -> None:
        while len(self._inbox) >= _HEADER.size and not self._paused:
            kind, _, size = _HEADER.unpack_from(self._inbox)
            problem = self._check(kind, size)
            if problem is not None:
                self._refuse(*problem)
                return
            if len(self._inbox) < size:
                return  # only ever waits for a chunk that fits the limits
            frame = bytes(self._inbox[:size])
            del self._inbox[:size]
            if kind == b"HEL" and not self._hello(frame):
                return
            buf = Buffer(frame)
            header = header_from_binary(buf)
            try:
                self.messages.put_nowait((header, buf))
            except asyncio.QueueFull:
                self._refuse(S.BadTcpServerTooBusy, f"more than {self.messages.maxsize} messages queued")
                return
            if self.messages.qsize() >= _QUEUE_PAUSE:
                self._pause("queue")

    def _pause(self, why: str) -> None:
        if not self._paused and self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()
        self._paused.add(why)

    def _resume(self, why: str) -> None:
        if why not in self._paused:
            return
        self._paused.discard(why)
        if not self._paused and self.transport is not None and not self.transport.is_closing():
            self._parse()  # what arrived before the pause first
            if not self._paused:
                self.transport.resume_reading()

    def pause_writing(self) -> None:
        if self._guard is not None:
            self._pause("writes")

    def resume_writing(self) -> None:
        if self._guard is not None:
            self._resume("writes")

    def _check(self, kind: bytes, size: int) -> tuple[int, str] | None:
        if kind == b"HEL":
            if self._hello_seen:
                return S.BadTcpMessageTypeInvalid, "a second HEL"
            if not _HELLO_MIN <= size <= _HELLO_MAX:
                return S.BadTcpMessageTooLarge, f"a HEL of {size} bytes"
            return None
        if kind not in _SECURE:
            return S.BadTcpMessageTypeInvalid, f"message type {kind!r}"
        if not self._hello_seen:
            return S.BadTcpMessageTypeInvalid, f"{kind.decode()} before HEL"
        if size > self._chunk_limit:
            return S.BadTcpMessageTooLarge, f"a {kind.decode()} chunk of {size} bytes (limit {self._chunk_limit})"
        if size < _SECURE_MIN:
            return S.BadTcpMessageTypeInvalid, f"a {kind.decode()} chunk of {size} bytes"
        return None

    def _hello(self, frame: bytes) -> bool:
        try:
            hello = struct_from_binary(ua.Hello, Buffer(frame[8:]))
        except Exception:
            self._refuse(S.BadTcpMessageTypeInvalid, "an undecodable HEL")
            return False
        if hello.ReceiveBufferSize < MIN_BUFFER_SIZE or hello.SendBufferSize < MIN_BUFFER_SIZE:
            self._refuse(
                S.BadConnectionRejected,
                f"HEL buffer sizes {hello.ReceiveBufferSize}/{hello.SendBufferSize} below {MIN_BUFFER_SIZE}",
            )
            return False
        assert self.processor is not None
        self._chunk_limit = min(int(hello.SendBufferSize), self.processor._limits.max_recv_buffer)
        self._hello_seen = True
        if self._hello_timer is not None:
            self._hello_timer.cancel()
        return True

    def _refuse(self, code: int, why: str, count: bool = True) -> None:
        log.warning("closing connection from %s: %s", self.peer_name, why)
        if count and self._guard is not None:
            self._guard.rejected += 1
        self._inbox = bytearray()
        if self.transport is not None:
            _send_error(self.transport, code, why)
            self.transport.close()

    async def _process_one_msg(self, header: Any, buf: Buffer) -> bool:
        if self._guard is None:
            return await super()._process_one_msg(header, buf)
        try:
            result = await super()._process_one_msg(header, buf)
        except Exception as exc:  # a chunk the secure channel cannot decode or verify: Part 6 says close
            self._refuse(S.BadDecodingError, f"undecodable {header.MessageType!r} chunk ({type(exc).__name__})")
            return False
        if self.messages.qsize() <= _QUEUE_RESUME:
            self._resume("queue")
        await asyncio.sleep(0)  # one message, then the other connections get a turn
        return result


def _send_error(transport: asyncio.BaseTransport, code: int, reason: str) -> None:
    if isinstance(transport, asyncio.WriteTransport) and not transport.is_closing():
        transport.write(uatcp_to_binary(ua.MessageType.Error, ua.ErrorMessage(ua.StatusCode(code), reason)))


def install_connection_guard(
    server: Server,
    guard: ConnectionGuard,
    max_chunk_size: int,
    max_message_size: int,
) -> None:
    """Guard `server`'s listener (call before `server.start()`); other servers in the process are unaffected."""
    iserver: InternalServer = server.iserver
    iserver.connection_guard = guard
    iserver.max_pending_activation_seconds = guard.activation_timeout_s
    iserver.max_connections = guard.max_connections + 1  # the guard refuses first, and says why
    server.limits = TransportLimits(
        max_recv_buffer=max_chunk_size,
        max_send_buffer=max_chunk_size,
        max_chunk_count=math.ceil(max_message_size / max_chunk_size),
        max_message_size=max_message_size,
    )
    if binary_server_asyncio.OPCUAProtocol is OPCUAProtocol:
        binary_server_asyncio.OPCUAProtocol = GuardedProtocol


TOUCHPOINTS: list[Touchpoint] = [
    Touchpoint("10 transport guard", binary_server_asyncio, "OPCUAProtocol"),
    Touchpoint(
        "10 transport guard",
        OPCUAProtocol,
        "__init__",
        ("self", "iserver", "policies", "clients", "closing_tasks", "limits"),
    ),
    Touchpoint("10 transport guard", OPCUAProtocol, "connection_made", ("self", "transport")),
    Touchpoint("10 transport guard", OPCUAProtocol, "connection_lost", ("self", "ex")),
    Touchpoint("10 transport guard", OPCUAProtocol, "data_received", ("self", "data")),
    Touchpoint("10 transport guard", OPCUAProtocol, "_activation_watchdog", ("self",)),
    Touchpoint("10 transport guard", OPCUAProtocol, "_process_one_msg", ("self", "header", "buf")),
    *(
        InstanceAttribute("10 transport guard", OPCUAProtocol, name)
        for name in ("iserver", "transport", "processor", "messages", "peer_name")
    ),
    *(
        InstanceAttribute("10 transport guard", InternalServer, name)
        for name in ("max_connections", "max_pending_activation_seconds")
    ),
    InstanceAttribute("10 transport guard", UaProcessor, "_limits"),
    InstanceAttribute("10 transport guard", Server, "limits"),
    *(
        Touchpoint("10 transport guard", TransportLimits, name)
        for name in ("max_recv_buffer", "max_send_buffer", "max_chunk_count", "max_message_size")
    ),
]
