"""Reload without restart over real TCP: SIGHUP (and the admin-only BridgeStatus.Reload method) re-reads users,
write rules, trust list and log level from the config file while an open session keeps its subscription; a bad
file keeps the running config and says why; keys that need a restart are named in the log."""

from __future__ import annotations

import copy
import signal

import pytest
import yaml
from asyncua import Client, ua
from asyncua.crypto import security_policies as sp
from cryptography.hazmat.primitives import serialization

from bridge.opcua.security.certificates import generate_certificate
from bridge.opcua.security.passwords import hash_password
from tests.helpers import wait_until, wait_until_sync
from tests.integration.conftest import RELOAD_PASSWORD

NS_URI = "urn:wincc-opcua-bridge:tags"
LEVEL = "System1.Tank1.Level"
CLIENT_URI = "urn:wincc-opcua-bridge:reload-client"


@pytest.fixture(scope="module")
def stack(bridge_stack):
    return bridge_stack(
        "dp",
        config={
            "opcua": {"security_policies": ["None", "Basic256Sha256_SignAndEncrypt"], "auto_accept_client_certs": False}
        },
    )


class _Changes:
    def __init__(self) -> None:
        self.count = 0

    def datachange_notification(self, node: object, value: object, data: object) -> None:
        self.count += 1


def _rewrite(stack, change) -> None:
    cfg = copy.deepcopy(stack.config)
    change(cfg)
    stack.config_path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")


def _hup_and_wait(stack, marker: str) -> None:
    seen = stack.log_text().count(marker)
    stack.bridge.send_signal(signal.SIGHUP)
    wait_until_sync(lambda: stack.log_text().count(marker) > seen, timeout=15, what=marker)


def _newcomer_url(stack) -> str:
    return stack.endpoint.replace("opc.tcp://", f"opc.tcp://newcomer:{RELOAD_PASSWORD}@")


async def test_sighup_adds_a_user_while_a_session_keeps_its_subscription(stack) -> None:
    watcher = Client(stack.url_for("reader"), timeout=10)
    await watcher.connect()
    try:
        ns = await watcher.get_namespace_index(NS_URI)
        changes = _Changes()
        sub = await watcher.create_subscription(100, changes)
        await sub.subscribe_data_change(watcher.get_node(ua.NodeId(LEVEL, ns)))
        await wait_until(lambda: changes.count >= 1, timeout=10, what="first notification")

        with pytest.raises(ua.UaError):  # not a user yet
            await Client(_newcomer_url(stack), timeout=10).connect()

        new_hash = hash_password(RELOAD_PASSWORD)
        port = int(stack.endpoint.rsplit(":", 1)[1].split("/")[0])

        def add_user(cfg: dict) -> None:
            cfg["opcua"]["users"].append({"name": "newcomer", "password_hash": new_hash, "role": "operator"})
            cfg["opcua"]["endpoint"] = f"opc.tcp://127.0.0.1:{port + 1}/wincc"  # needs a restart
            cfg["log"] = {"level": "debug"}

        _rewrite(stack, add_user)
        _hup_and_wait(stack, "reloaded ")
        assert "restart to apply: opcua.endpoint" in stack.log_text()

        newcomer = Client(_newcomer_url(stack), timeout=10)
        await newcomer.connect()  # the endpoint did not move: it needs a restart
        try:
            value = await newcomer.get_node(ua.NodeId(LEVEL, ns)).read_data_value(raise_on_bad_status=False)
            assert value.StatusCode.is_good()
        finally:
            await newcomer.disconnect()
        assert "DEBUG" in stack.log_text()  # log.level from the file

        # the session opened before the reload still gets its notifications
        before = changes.count
        await wait_until(lambda: changes.count > before + 1, timeout=10, what="notifications after the reload")
        assert await watcher.get_node(ua.NodeId(LEVEL, ns)).read_value() is not None
    finally:
        await watcher.disconnect()


async def test_a_bad_file_keeps_the_running_config(stack) -> None:
    good = stack.config_path.read_text(encoding="utf-8")
    stack.config_path.write_text(good.replace("opcua:", "opcua:\n  no_such_key: 1", 1), encoding="utf-8")
    try:
        _hup_and_wait(stack, "the running config stays")
        assert "opcua.no_such_key" in stack.log_text()
        newcomer = Client(_newcomer_url(stack), timeout=10)  # still a user: the old config holds
        await newcomer.connect()
        await newcomer.disconnect()
    finally:
        stack.config_path.write_text(good, encoding="utf-8")
    assert stack.bridge.poll() is None


async def test_a_placeholder_hash_is_refused_by_reload_as_by_run(stack) -> None:
    placeholder = "scrypt$16384$8$1$REPLACEwithREALsalt0000==$REPLACEwithREALhash000000000000000000000000="
    good = stack.config_path.read_text(encoding="utf-8")
    _rewrite(
        stack,
        lambda cfg: cfg["opcua"]["users"].append({"name": "mes", "password_hash": placeholder, "role": "operator"}),
    )
    try:
        _hup_and_wait(stack, "refused, the running config stays")
        (line,) = [x for x in stack.log_text().splitlines() if "refused, the running config stays" in x]
        assert "password_hash" in line and "placeholder" in line and "'mes'" in line
    finally:
        stack.config_path.write_text(good, encoding="utf-8")
    assert stack.bridge.poll() is None


async def test_reload_method_is_for_admins(stack) -> None:
    for user, allowed in (("operator", False), ("admin", True)):
        client = Client(stack.url_for(user), timeout=10)
        await client.connect()
        try:
            bridge_ns = await client.get_namespace_index(NS_URI + "/bridge")
            status = client.get_node(ua.NodeId("BridgeStatus", bridge_ns))
            method = ua.NodeId("BridgeStatus.Reload", bridge_ns)
            if allowed:
                line = await status.call_method(method)
                assert line.startswith("reloaded ")
            else:
                with pytest.raises(ua.uaerrors.BadUserAccessDenied):
                    await status.call_method(method)
        finally:
            await client.disconnect()


async def test_sighup_reloads_the_trust_list(stack, tmp_path) -> None:
    cert, key = generate_certificate(CLIENT_URI, ["localhost"], "Reload Client", client=True)
    (tmp_path / "c.der").write_bytes(cert.public_bytes(serialization.Encoding.DER))
    (tmp_path / "c.pem").write_bytes(key)

    async def connect() -> None:
        client = Client(stack.url_for("reader"), timeout=10)
        client.application_uri = CLIENT_URI
        await client.set_security(
            sp.SecurityPolicyBasic256Sha256,
            str(tmp_path / "c.der"),
            str(tmp_path / "c.pem"),
            mode=ua.MessageSecurityMode.SignAndEncrypt,
        )
        await client.connect()
        await client.disconnect()

    with pytest.raises(Exception):  # noqa: B017 - asyncua raises several types for a refused certificate
        await connect()
    _rewrite(stack, lambda cfg: cfg["opcua"].update(auto_accept_client_certs=True))
    try:
        _hup_and_wait(stack, "reloaded ")
        await connect()  # trusted now, without a restart
    finally:
        stack.config_path.write_text(yaml.safe_dump(stack.config, sort_keys=False), encoding="utf-8")
