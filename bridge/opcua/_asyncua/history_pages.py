"""Touchpoint 9: pre-encoded history pages."""

from __future__ import annotations

from asyncua import ua
from asyncua.common.utils import Buffer
from asyncua.ua import ua_binary
from asyncua.ua.ua_binary import from_binary, struct_to_binary

from bridge.opcua._asyncua.touchpoint import Touchpoint

__all__ = ["TOUCHPOINTS", "Buffer", "from_binary", "struct_to_binary"]

# ---- 9. Pre-encoded history pages ---------------------------------------------------------------------------------
# Why: building a DataValue and a Variant per archived value and letting asyncua's generic serializer walk them
# cost more than reading the archive over REST; history/encode.py packs raw pages itself and hands asyncua an
# ExtensionObject whose Body is the encoded HistoryData (asyncua writes a Body as it is). struct_to_binary is the
# reference encoder (values the fast path does not pack, and the tests' byte-for-byte comparison); from_binary with
# Buffer decodes a page for in-process readers. Read against asyncua 2.1.0: extensionobject_to_binary(obj) encodes
# a ua.ExtensionObject (subclasses too) with struct_to_binary, i.e. TypeId, Encoding, Body; struct_to_binary(obj);
# from_binary(uatype, data); Buffer(data).

TOUCHPOINTS: list[Touchpoint] = [
    Touchpoint("9 pre-encoded history pages", ua_binary, "extensionobject_to_binary", ("obj",)),
    Touchpoint("9 pre-encoded history pages", ua_binary, "struct_to_binary", ("obj",)),
    Touchpoint("9 pre-encoded history pages", ua_binary, "from_binary", ("uatype", "data")),
    Touchpoint("9 pre-encoded history pages", ua.ExtensionObject, "Body"),
]
