"""An in-process asyncua server with a built address space, for unit tests of the UA-side services (server side
only: no asyncua client runs in the same event loop)."""

from __future__ import annotations

from collections.abc import Sequence

from asyncua import Server

from bridge.opcua.model.address_space import AddressSpace
from bridge.opcua.model.tags import TagDirectory
from bridge.opcua.services.session import BridgeInternalServer
from bridge.wincc.models import TagInfo


async def server_with_tags(tags: Sequence[TagInfo]) -> tuple[Server, TagDirectory]:
    server = Server(iserver=BridgeInternalServer())
    await server.init()
    ns = await server.register_namespace("urn:t")
    directory = TagDirectory(ns, await server.register_namespace("urn:t/f"), await server.register_namespace("urn:t/b"))
    await AddressSpace(server, directory).build(tags)
    return server, directory
