"""The default HTTP engine (aiohttp) against real sockets on 127.0.0.1: what each kind of failure becomes, and
that answers arrive whole (decompressed, over one kept-alive connection)."""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from bridge.config import WinCCConfig
from bridge.wincc.errors import WinCCTimeout, WinCCUnreachable
from bridge.wincc.http_engine import ENV, AiohttpEngine, new_engine
from bridge.wincc.transport import Transport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Server:
    """A raw HTTP/1.1 server: `handler` gets each connection; counts connections and keeps request heads."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.heads: list[bytes] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Server:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await self.handler(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        self._server = await asyncio.start_server(serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        self.heads.append(head)
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                await reader.readexactly(int(line.split(b":")[1]))
        return head


def _config(port: int, read_s: float = 5.0) -> WinCCConfig:
    return WinCCConfig(
        url=f"http://127.0.0.1:{port}",
        dialect="dp",
        timeouts={"connect_s": 2.0, "read_s": read_s, "write_s": 2.0},
        retry={"attempts": 1, "backoff_s": 0, "max_backoff_s": 0.01},
    )


@pytest.fixture
async def transport_for() -> AsyncIterator[Callable[..., Transport]]:
    made: list[Transport] = []

    def make(port: int, read_s: float = 5.0) -> Transport:
        t = Transport(_config(port, read_s), engine=AiohttpEngine(max_connections=2))
        made.append(t)
        return t

    yield make
    for t in made:
        await t.aclose()


def _answer(body: bytes, *headers: str, status: str = "200 OK") -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", "Content-Type: application/json", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def test_refused_connection_is_unreachable_not_timeout(transport_for: Callable[..., Transport]) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(WinCCUnreachable, match="ConnectError"):
        await transport_for(port).request_json("GET", "/api/dp/browse")


async def test_no_answer_is_a_timeout(transport_for: Callable[..., Transport]) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        await reader.read()  # no answer: the connection is held until the client gives up on it

    async with Server(silent) as server:
        with pytest.raises(WinCCTimeout, match="no answer in time"):
            await transport_for(server.port, read_s=0.3).request_json("GET", "/api/dp/browse")


async def test_reset_mid_answer_is_unreachable(transport_for: Callable[..., Transport]) -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{"items": [')
        await writer.drain()
        writer.transport.abort()  # RST, mid-body

    async with Server(cut) as server:
        with pytest.raises(WinCCUnreachable):
            await transport_for(server.port).request_json("GET", "/api/dp/browse")


async def test_garbage_instead_of_http_is_unreachable(transport_for: Callable[..., Transport]) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"\x00\x01 this is not HTTP\r\n\r\n")
        await writer.drain()

    async with Server(garbage) as server:
        with pytest.raises(WinCCUnreachable):
            await transport_for(server.port).request_json("GET", "/api/dp/browse")


async def test_answers_are_whole_decompressed_and_share_one_connection(
    transport_for: Callable[..., Transport],
) -> None:
    body = b'{"items": [], "continuation": null, "pad": "' + b"x" * 50_000 + b'"}'

    async def keep_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await server.read_request(reader)
            writer.write(_answer(gzip.compress(body), "Content-Encoding: gzip"))
            await writer.drain()

    async with Server(keep_alive) as server:
        t = transport_for(server.port)
        for _ in range(3):
            answer = await t.request_json("POST", "/WinCC/REST/Tags/ReadMultiple", json={"TagNames": ["a"]})
            assert answer["pad"] == "x" * 50_000
    assert server.connections == 1
    head = server.heads[0].lower()
    assert head.startswith(b"post /winc") and b"user-agent: wincc-opcua-bridge" in head
    assert b"content-type: application/json" in head


async def test_percent_encoded_paths_go_out_as_given(transport_for: Callable[..., Transport]) -> None:
    async def ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(_answer(b"{}"))
        await writer.drain()

    async with Server(ok) as server:
        await transport_for(server.port).request_json("GET", "/api/dp/Tank%201.Level", params={"a": "b c"})
    assert server.heads[0].startswith(b"GET /api/dp/Tank%201.Level?a=b+c HTTP/1.1")


def test_engine_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    assert isinstance(new_engine(verify=True, max_connections=1), AiohttpEngine)
    monkeypatch.setenv(ENV, "httpx")
    assert not isinstance(new_engine(verify=True, max_connections=1), AiohttpEngine)
    monkeypatch.setenv(ENV, "curl")
    with pytest.raises(ValueError, match="WINCC_BRIDGE_HTTP"):
        new_engine(verify=True, max_connections=1)
