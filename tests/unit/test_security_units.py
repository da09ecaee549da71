"""User manager, request rights, trust list and certificates, without a network."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from asyncua import ua
from asyncua.common.utils import ServiceError
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.user_managers import PermissiveUserManager
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from bridge.config import OpcUaConfig, Role
from bridge.opcua.calls import may_call
from bridge.opcua.certificates import ensure_certificate, generate_certificate, thumbprint
from bridge.opcua.security import BridgeRuleset, endpoint_urls
from bridge.opcua.trust import TrustList
from bridge.opcua.user_manager import BridgeUserManager
from bridge.opcua.users import BridgeUser, role_of
from bridge.passwords import hash_password

PW = "op-secret-91"


def manager(anonymous: str = "none", limit: int = 3) -> BridgeUserManager:
    cfg = OpcUaConfig(users=[{"name": "op", "password_hash": hash_password(PW), "role": "operator"}],
                      anonymous=anonymous, failed_login_limit=limit)
    return BridgeUserManager(cfg)


def test_password_login_and_roles(caplog: pytest.LogCaptureFixture) -> None:
    m = manager()
    user = m.get_user(None, "op", PW)
    assert isinstance(user, BridgeUser) and user.access is Role.operator
    caplog.set_level(logging.INFO)
    assert m.get_user(None, "op", "wrong-one") is None
    assert m.get_user(None, "admin", "") is None  # asyncua's default lets "admin" in; ours never does
    assert m.get_user(None, "nobody", PW) is None
    assert PW not in caplog.text and "wrong-one" not in caplog.text
    assert "failed login for user 'op'" in caplog.text


def test_anonymous_per_config() -> None:
    assert manager("none").get_user(None) is None
    anon = manager("read").get_user(None)
    assert role_of(anon) is Role.reader


def test_failed_logins_rate_limited() -> None:
    m = manager(limit=3)
    for _ in range(3):
        assert m.get_user(None, "op", "bad") is None
    assert m.get_user(None, "op", PW) is None  # locked for the rest of the minute, even with the right password


def test_asyncua_default_users_have_no_rights() -> None:
    default_user = PermissiveUserManager().get_user(type("I", (), {"allow_remote_admin": True})(), "admin")
    assert role_of(default_user) is None
    rules = BridgeRuleset()
    write = ua.NodeId(ua.ObjectIds.WriteRequest_Encoding_DefaultBinary)
    add_nodes = ua.NodeId(ua.ObjectIds.AddNodesRequest_Encoding_DefaultBinary)
    assert not rules.check_validity(User(role=UserRole.Admin), write, None)
    assert rules.check_validity(BridgeUser.named("r", Role.reader), write, None)  # refused per node later
    assert not rules.check_validity(BridgeUser.named("o", Role.operator), add_nodes, None)
    assert rules.check_validity(BridgeUser.named("a", Role.admin), add_nodes, None)


def test_call_rules() -> None:
    ack = ua.NodeId(ua.ObjectIds.AcknowledgeableConditionType_Acknowledge)
    refresh = ua.NodeId(ua.ObjectIds.ConditionType_ConditionRefresh)
    assert not may_call(Role.reader, ack) and may_call(Role.operator, ack)
    assert may_call(Role.reader, refresh) and not may_call(None, refresh)
    state = ua.NodeId(ua.ObjectIds.Server_RequestServerStateChange)
    assert not may_call(Role.operator, state) and may_call(Role.admin, state)


def test_endpoint_urls_advertise_public_hostname() -> None:
    bind, public = endpoint_urls(OpcUaConfig(endpoint="opc.tcp://0.0.0.0:4841/wincc", public_hostname="scada.plant"))
    assert bind == "opc.tcp://0.0.0.0:4841/wincc" and public == "opc.tcp://scada.plant:4841/wincc"


def test_certificate_has_app_uri_and_hosts_and_is_reused(tmp_path: Path) -> None:
    own = ensure_certificate(tmp_path, "urn:test:server", ["plant-host", "10.1.2.3"], "Bridge")
    san = own.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "urn:test:server" in san.get_values_for_type(x509.UniformResourceIdentifier)
    assert "plant-host" in san.get_values_for_type(x509.DNSName)
    assert own.certificate.public_key().key_size >= 2048
    assert oct(own.key_path.stat().st_mode & 0o777) == "0o600"
    again = ensure_certificate(tmp_path, "urn:test:server", ["plant-host", "10.1.2.3"], "Bridge")
    assert thumbprint(again.certificate) == thumbprint(own.certificate)
    changed = ensure_certificate(tmp_path, "urn:other:server", ["plant-host"], "Bridge")
    assert thumbprint(changed.certificate) != thumbprint(own.certificate)


def test_unknown_client_cert_rejected_then_trusted_by_moving_the_file(tmp_path: Path) -> None:
    trust = TrustList(tmp_path)
    cert, _ = generate_certificate("urn:uaexpert", ["localhost"], "UaExpert", client=True)
    app = ua.ApplicationDescription(ApplicationUri="urn:uaexpert")
    with pytest.raises(ServiceError):
        asyncio.run(trust(cert, app))
    (rejected,) = list((tmp_path / "rejected").iterdir())
    assert thumbprint(cert) in rejected.name
    rejected.rename(tmp_path / "trusted" / rejected.name)
    asyncio.run(trust(cert, app))  # no exception: trusted now
    assert x509.load_der_x509_certificate((tmp_path / "trusted" / rejected.name).read_bytes()).public_bytes(
        serialization.Encoding.DER) == cert.public_bytes(serialization.Encoding.DER)
