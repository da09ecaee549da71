"""User manager, request rights, trust list and certificates, without a network."""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asyncua import ua
from asyncua.common.utils import ServiceError
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.user_managers import PermissiveUserManager
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from bridge.config import OpcUaConfig, Role
from bridge.opcua.security import user_manager as user_manager_module
from bridge.opcua.security.certificates import ensure_certificate, generate_certificate, thumbprint
from bridge.opcua.security.passwords import hash_password
from bridge.opcua.security.policies import BridgeRuleset, endpoint_urls
from bridge.opcua.security.trust import TrustList, certificate_problem
from bridge.opcua.security.user_manager import BridgeUserManager, FailedLogins
from bridge.opcua.security.users import BridgeUser, login_from, may_write, role_of
from bridge.opcua.services.calls import may_call

PW = "op-secret-91"


def manager(anonymous: str = "none", limit: int = 3) -> BridgeUserManager:
    cfg = OpcUaConfig(
        users=[{"name": "op", "password_hash": hash_password(PW), "role": "operator"}],
        anonymous=anonymous,
        failed_login_limit=limit,
    )
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


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_failed_logins_lock_one_address_not_the_user(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    m = BridgeUserManager(
        OpcUaConfig(
            users=[{"name": "op", "password_hash": hash_password(PW), "role": "operator"}], failed_login_limit=3
        ),
        clock=clock,
    )
    scrypts: list[str] = []
    real_verify = user_manager_module.verify_password
    monkeypatch.setattr(
        user_manager_module, "verify_password", lambda pw, stored: scrypts.append(stored) or real_verify(pw, stored)
    )
    with login_from("10.0.0.66"):
        for _ in range(3):
            assert m.get_user(None, "op", "bad") is None
        assert len(scrypts) == 3
        assert m.get_user(None, "op", PW) is None  # locked for the rest of the minute, even with the right password
        assert len(scrypts) == 3  # refused without running scrypt
    with login_from("10.0.0.7"):
        assert role_of(m.get_user(None, "op", PW)) is Role.operator  # the attacker cannot lock op out elsewhere
    clock.now += 59
    with login_from("10.0.0.66"):
        assert m.get_user(None, "op", PW) is None
    clock.now += 2  # the window has passed
    with login_from("10.0.0.66"):
        assert role_of(m.get_user(None, "op", PW)) is Role.operator


def test_rotating_names_locks_the_address(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    m = BridgeUserManager(
        OpcUaConfig(
            users=[{"name": "op", "password_hash": hash_password(PW), "role": "operator"}], failed_login_limit=2
        ),
        clock=clock,
    )
    scrypts: list[str] = []
    monkeypatch.setattr(user_manager_module, "verify_password", lambda pw, stored: scrypts.append(stored) or False)
    with login_from("10.0.0.66"):
        for i in range(20):
            assert m.get_user(None, f"guess{i}", "x") is None
    assert len(scrypts) == 2 * 3  # per-address limit: 3 x failed_login_limit, then no more scrypt at all
    monkeypatch.setattr(user_manager_module, "verify_password", lambda pw, stored: True)
    with login_from("10.0.0.66"):
        assert m.get_user(None, "op", PW) is None
    with login_from("10.0.0.7"):
        assert role_of(m.get_user(None, "op", PW)) is Role.operator


def test_failure_table_is_bounded() -> None:
    clock = Clock()
    table = FailedLogins(window_s=60, max_keys=100, clock=clock)
    for i in range(1000):
        table.add(f"10.0.{i // 256}.{i % 256}", keep=5)
    assert len(table) == 100  # oldest forgotten first
    assert table.locked_until("10.0.3.231", 1) is not None and table.locked_until("10.0.0.0", 1) is None
    clock.now += 61
    table.add("10.9.9.9", keep=5)
    assert len(table) == 1  # failures older than the window are dropped
    for _ in range(50):
        table.add("10.9.9.9", keep=5)
    assert table.locked_until("10.9.9.9", 5) is not None and len(table) == 1


def test_write_rules_travel_with_the_user() -> None:
    cfg = OpcUaConfig(
        users=[
            {"name": "op", "password_hash": hash_password(PW), "role": "operator"},
            {"name": "lim", "password_hash": hash_password(PW), "role": "operator"},
        ],
        write_rules={"lim": ["System1.Tank1.*"]},
    )
    m = BridgeUserManager(cfg)
    op, lim = m.get_user(None, "op", PW), m.get_user(None, "lim", PW)
    assert may_write(op, "System1.Pump1.SpeedSetpoint") and may_write(lim, "System1.Tank1.InletValve")
    assert not may_write(lim, "System1.Pump1.SpeedSetpoint")
    assert not may_write(BridgeUser.named("r", Role.reader), "System1.Tank1.InletValve")
    assert not may_write(object(), "System1.Tank1.InletValve")


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
        serialization.Encoding.DER
    ) == cert.public_bytes(serialization.Encoding.DER)


APP = ua.ApplicationDescription(ApplicationUri="urn:uaexpert", ApplicationType=ua.ApplicationType.Client)


def _trusted_list(tmp_path: Path, cert: x509.Certificate, *, auto_accept: bool = False) -> TrustList:
    trust = TrustList(tmp_path, auto_accept=auto_accept)
    (tmp_path / "trusted" / "client.der").write_bytes(cert.public_bytes(serialization.Encoding.DER))
    return trust


def _refusal(trust: TrustList, cert: x509.Certificate, app: ua.ApplicationDescription = APP) -> int | None:
    try:
        asyncio.run(trust(cert, app))
    except ServiceError as exc:
        return exc.code
    return None


def test_directly_trusted_certificate_must_be_in_its_validity_period(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    now = datetime.now(UTC)
    expired, _ = generate_certificate(
        "urn:uaexpert", [], "Old", client=True, not_before=now - timedelta(days=30), days=10
    )
    future, _ = generate_certificate("urn:uaexpert", [], "Early", client=True, not_before=now + timedelta(days=1))
    good, _ = generate_certificate("urn:uaexpert", [], "Good", client=True)
    caplog.set_level(logging.WARNING)
    time_invalid = ua.StatusCodes.BadCertificateTimeInvalid
    for cert in (expired, future):
        assert _refusal(_trusted_list(tmp_path / thumbprint(cert), cert), cert) == time_invalid
        # auto_accept trusts any issuer, not an expired certificate
        assert _refusal(TrustList(tmp_path / "auto", auto_accept=True), cert) == time_invalid
    assert "expired on" in caplog.text and "not valid before" in caplog.text and thumbprint(expired) in caplog.text
    assert _refusal(_trusted_list(tmp_path / "good", good), good) is None


def test_application_uri_must_match_the_certificate(tmp_path: Path) -> None:
    cert, _ = generate_certificate("urn:uaexpert", ["localhost"], "UaExpert", client=True)
    trust = _trusted_list(tmp_path, cert)
    other = ua.ApplicationDescription(ApplicationUri="urn:someone-else", ApplicationType=ua.ApplicationType.Client)
    assert _refusal(trust, cert, other) == ua.StatusCodes.BadCertificateUriInvalid
    assert _refusal(trust, cert) is None


def test_client_certificate_key_usage(tmp_path: Path) -> None:
    server_only, _ = generate_certificate("urn:uaexpert", [], "S", extended_usage=[ExtendedKeyUsageOID.SERVER_AUTH])
    sign_only, _ = generate_certificate(
        "urn:uaexpert",
        [],
        "K",
        client=True,
        key_usage=x509.KeyUsage(
            digital_signature=False,
            content_commitment=False,
            key_encipherment=True,
            data_encipherment=True,
            key_agreement=False,
            key_cert_sign=True,
            crl_sign=False,
            encipher_only=False,
            decipher_only=False,
        ),
    )
    no_eku, _ = generate_certificate("urn:uaexpert", [], "N", extended_usage=[])
    for cert in (server_only, sign_only):
        assert (
            _refusal(_trusted_list(tmp_path / thumbprint(cert), cert), cert)
            == ua.StatusCodes.BadCertificateUseNotAllowed
        )
    assert certificate_problem(no_eku, APP) is None  # no ExtendedKeyUsage: every use allowed (X.509)


def test_rejected_file_name_needs_no_shell_quoting(tmp_path: Path) -> None:
    """`<name>_<thumbprint>.der` from letters, digits, '.', '-', '_' only, whatever the certificate's CN holds."""
    trust = TrustList(tmp_path)
    cert, _ = generate_certificate("urn:x", ["localhost"], "urn:x [UaExpert] $(rm -rf) 'quoted'", client=True)
    with pytest.raises(ServiceError):
        asyncio.run(trust(cert, ua.ApplicationDescription(ApplicationUri="urn:x")))
    (rejected,) = list((tmp_path / "rejected").iterdir())
    assert rejected.name == f"urn_x_UaExpert_rm_-rf_quoted_{thumbprint(cert)}.der"
    assert re.fullmatch(r"[A-Za-z0-9._-]+", rejected.name)


@pytest.mark.parametrize(
    ("auto_accept", "uri", "expected"),
    [
        (True, "urn:wrong", "refused (BadCertificateUriInvalid)"),
        (True, "urn:uaexpert", "accepted (auto_accept_client_certs)"),
        (False, "urn:uaexpert", "is not trusted: saved as"),  # saved to rejected/
    ],
)
def test_one_log_line_per_certificate_decision(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, auto_accept: bool, uri: str, expected: str
) -> None:
    trust = TrustList(tmp_path, auto_accept=auto_accept)
    cert, _ = generate_certificate("urn:uaexpert", ["localhost"], "UaExpert", client=True)
    caplog.set_level(logging.INFO, logger="bridge.opcua.security.trust")
    _refusal(trust, cert, ua.ApplicationDescription(ApplicationUri=uri))
    lines = [r for r in caplog.records if r.name == "bridge.opcua.security.trust"]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    message = lines[0].getMessage()
    assert thumbprint(cert) in message and expected in message
    assert lines[0].levelno == (logging.INFO if expected.startswith("accepted") else logging.WARNING)
