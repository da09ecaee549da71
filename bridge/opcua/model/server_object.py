"""The standard Server object's nodes that tell clients about this server (Part 5): BuildInfo, Auditing and
ServerRedundancy (ServiceLevel: app.py keeps it up to date). asyncua fills them with placeholders ("FreeOpcUa",
255, no redundancy).

- BuildInfo: product name and URI, manufacturer, the installed package's version and its build date (the
  package files' time stamp, which pip sets from the wheel; SOURCE_DATE_EPOCH wins when set).
- Auditing (i=2994) true: every write emits AuditWriteUpdateEventType on the Server object (services/audit.py).
- ServiceLevel (i=2267) is written by the bridge from `service_level()` (service_level.py).
- ServerRedundancy (i=2296) from `opcua.redundancy`: RedundancySupport (None/Cold/Warm/Hot) and, in a redundant
  set, the object becomes a NonTransparentRedundancyType with ServerUriArray = this server's ApplicationUri
  followed by the partners' (Part 4, 6.6.2: clients pick the member with the highest ServiceLevel).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from asyncua import Server, ua

import bridge
from bridge.config import RedundancyConfig

__all__ = ["build_date", "package_version", "set_auditing", "set_build_info", "set_redundancy"]

O = ua.ObjectIds
DIST = "wincc-opcua-bridge"
PRODUCT_URI = "urn:wincc-opcua-bridge"
MANUFACTURER = "wincc-opcua-bridge project"
_SUPPORT = {
    "none": ua.RedundancySupport.None_,
    "cold": ua.RedundancySupport.Cold,
    "warm": ua.RedundancySupport.Warm,
    "hot": ua.RedundancySupport.Hot,
}


def package_version() -> str:
    try:
        return metadata.version(DIST)
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return bridge.__version__


def build_date() -> datetime:
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "")
    if epoch.isdigit():
        return datetime.fromtimestamp(int(epoch), UTC)
    return datetime.fromtimestamp(Path(bridge.__file__).stat().st_mtime, UTC)


async def set_build_info(server: Server, product_name: str) -> None:
    version = package_version()
    await server.set_build_info(PRODUCT_URI, MANUFACTURER, product_name, version, version, build_date())


async def set_auditing(server: Server) -> None:
    await server.get_node(ua.NodeId(O.Server_Auditing)).write_value(ua.Variant(True, ua.VariantType.Boolean))


async def set_redundancy(server: Server, config: RedundancyConfig, own_uri: str) -> None:
    obj = server.get_node(ua.NodeId(O.Server_ServerRedundancy))
    support = server.get_node(ua.NodeId(O.Server_ServerRedundancy_RedundancySupport))
    await support.write_value(ua.Variant(_SUPPORT[config.mode].value, ua.VariantType.Int32))
    if config.mode == "none":
        return
    # the standard nodeset has ServerUriArray (i=11314) but hangs it under no object: make the Server's
    # redundancy object the NonTransparentRedundancyType that owns it
    uris = server.get_node(ua.NodeId(O.Server_ServerRedundancy_ServerUriArray))
    await uris.write_value(ua.Variant([own_uri, *config.partners], ua.VariantType.String))
    children = {c.nodeid for c in await obj.get_children()}
    if uris.nodeid not in children:
        await obj.add_reference(uris.nodeid, ua.NodeId(O.HasProperty), forward=True, bidirectional=True)
    old_type = await obj.read_type_definition()
    if old_type is not None and old_type != ua.NodeId(O.NonTransparentRedundancyType):
        await obj.delete_reference(old_type, ua.NodeId(O.HasTypeDefinition), forward=True, bidirectional=False)
        await obj.add_reference(
            ua.NodeId(O.NonTransparentRedundancyType), ua.NodeId(O.HasTypeDefinition), forward=True, bidirectional=False
        )
