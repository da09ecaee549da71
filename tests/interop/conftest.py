"""The interop tests run node-opcua (fixtures `node_opcua` and `node_client` in tests/conftest.py) against the
same real simulator + bridge stack the integration tests use."""

from __future__ import annotations

from tests.integration.conftest import bridge_stack  # noqa: F401
