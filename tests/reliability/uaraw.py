"""A raw OPC UA TCP client for hostile tests: real sockets, hand-made (and deliberately broken) messages; and the
probes the tests watch the bridge with (its metrics, its RSS, a well-behaved client reading meanwhile).

asyncua's own encoders build the valid parts (HEL, an OPN with SecurityPolicy None, MSG chunks), so a test can
get a secure channel open and then send whatever it likes. Blocking sockets: the bridge runs in another process.
"""

from __future__ import annotations

import asyncio
import re
import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from asyncua import Client, ua
from asyncua.common.connection import SecureConnection, TransportLimits
from asyncua.common.utils import Buffer
from asyncua.crypto.security_policies import SecurityPolicyNone
from asyncua.ua.ua_binary import (
    header_from_binary,
    nodeid_from_binary,
    struct_from_binary,
    struct_to_binary,
    uatcp_to_binary,
)

from tests.integration.conftest import Stack

__all__ = ["Frame", "RawUa", "Reader", "hello", "metric", "port_of", "rss_bytes"]


def hello(url: str = "", recv: int = 65535, send: int = 65535, max_message: int = 0, max_chunks: int = 0) -> bytes:
    return uatcp_to_binary(
        ua.MessageType.Hello,
        ua.Hello(
            ProtocolVersion=0,
            ReceiveBufferSize=recv,
            SendBufferSize=send,
            MaxMessageSize=max_message,
            MaxChunkCount=max_chunks,
            EndpointUrl=url,
        ),
    )


def header(kind: bytes, size: int, chunk: bytes = b"F") -> bytes:
    return kind + chunk + struct.pack("<I", size)


@dataclass
class Frame:
    kind: bytes  # b"ACK", b"ERR", b"OPN", b"MSG", b"CLO"
    body: bytes

    @property
    def error(self) -> int | None:
        """The StatusCode of an ERR message."""
        return struct.unpack_from("<I", self.body)[0] if self.kind == b"ERR" else None


class RawUa:
    def __init__(self, port: int, host: str = "127.0.0.1", source: str | None = None, timeout: float = 5) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        if source is not None:
            self.sock.bind((source, 0))
        self.sock.connect((host, port))
        self.url = f"opc.tcp://{host}:{port}/wincc"
        self.conn = SecureConnection(SecurityPolicyNone(), TransportLimits())
        self._request_id = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawUa:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, data: bytes) -> bool:
        """False once the server has closed the connection."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def _exact(self, n: int) -> bytes | None:
        out = bytearray()
        while len(out) < n:
            try:
                part = self.sock.recv(n - len(out))
            except ConnectionResetError:
                return None
            if not part:
                return None
            out += part
        return bytes(out)

    def recv(self) -> Frame | None:
        """The next message from the server, or None when it closed the connection."""
        head = self._exact(8)
        if head is None:
            return None
        kind, _, size = struct.unpack("<3scI", head)
        body = self._exact(size - 8)
        return None if body is None else Frame(kind, body)

    def closed_within(self, timeout: float) -> tuple[bool, list[Frame]]:
        """Read until the server closes (True) or `timeout` passes (False); also what it sent meanwhile."""
        frames: list[Frame] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                frame = self.recv()
            except TimeoutError:
                return False, frames
            if frame is None:
                return True, frames
            frames.append(frame)
        return False, frames

    # ---- the valid steps ----------------------------------------------------------------------------------------
    def hello(self) -> Frame:
        self.send(hello(self.url))
        ack = self.recv()
        assert ack is not None and ack.kind == b"ACK", ack
        return ack

    def open(self) -> None:
        req = ua.OpenSecureChannelRequest()
        req.Parameters.ClientProtocolVersion = 0
        req.Parameters.RequestType = ua.SecurityTokenRequestType.Issue
        req.Parameters.SecurityMode = ua.MessageSecurityMode.None_
        req.Parameters.ClientNonce = b""
        req.Parameters.RequestedLifetime = 60_000
        self.send(self.conn.message_to_binary(struct_to_binary(req), ua.MessageType.SecureOpen, self._next_id()))
        frame = self.recv()
        assert frame is not None and frame.kind == b"OPN", frame
        message = self._decode(frame)
        response = struct_from_binary(ua.OpenSecureChannelResponse, message.body())
        self.conn.set_channel(response.Parameters, ua.SecurityTokenRequestType.Issue, b"")

    def request(self, request: object) -> bytes:
        """The MSG chunk(s) of a request, to send as they are or cut up."""
        return self.conn.message_to_binary(struct_to_binary(request), ua.MessageType.SecureMessage, self._next_id())

    def response(self) -> ua.ResponseHeader | Frame | None:
        """The next response's header (every response, a ServiceFault too, starts with one), an ERR frame, or None
        when the server closed the connection."""
        frame = self.recv()
        if frame is None or frame.kind == b"ERR":
            return frame
        body = self._decode(frame).body()
        nodeid_from_binary(body)  # the response's type
        return struct_from_binary(ua.ResponseHeader, body)

    def _decode(self, frame: Frame) -> ua.Message:
        data = frame.kind + b"F" + struct.pack("<I", len(frame.body) + 8) + frame.body
        buf = Buffer(data)
        head = header_from_binary(buf)
        message = self.conn.receive_from_header_and_body(head, buf)
        assert isinstance(message, ua.Message)
        return message

    def _next_id(self) -> int:
        self._request_id += 1
        return self._request_id


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


# ---- watching the bridge from outside --------------------------------------------------------------------------
def port_of(stack: Stack) -> int:
    return int(stack.endpoint.rsplit(":", 1)[1].split("/")[0])


def metric(stack: Stack, name: str) -> float:
    text = httpx.get(stack.health_url + "/metrics", timeout=5).text
    found = re.search(rf"^wincc_bridge_{name} ([0-9.e+-]+)$", text, re.M)
    assert found, f"no metric {name}"
    return float(found.group(1))


class Reader:
    """A well-behaved client reading the server time in a loop; records the slowest round trip and any failure."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.slowest = 0.0
        self.reads = 0
        self.failures: list[str] = []

    async def run(self, stop: asyncio.Event) -> None:
        async with Client(self.stack.url_for("reader"), timeout=10) as client:
            node = client.get_node(ua.NodeId(ua.ObjectIds.Server_ServerStatus_CurrentTime))
            while not stop.is_set():
                started = time.monotonic()
                try:
                    await node.read_value()
                    self.reads += 1
                except Exception as exc:  # recorded: the test fails on any
                    self.failures.append(repr(exc))
                self.slowest = max(self.slowest, time.monotonic() - started)
                await asyncio.sleep(0.02)  # pacing of the load: about 50 reads a second, not a wait for a condition
