"""The server's application instance certificate: made on first start, reused after.

RSA 2048, SHA-256, valid 5 years, SubjectAltName with the ApplicationUri (clients check it against the server's
ApplicationUri) and every host name and IP clients may use to reach the endpoint. Stored as DER certificate and
PEM key (mode 0600) under `pki/own/`. A certificate whose ApplicationUri or host names no longer match the config
is made again, so UaExpert never sees a mismatch after a config change.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from asyncua.crypto import cert_gen
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["OwnCertificate", "ensure_certificate", "generate_certificate", "thumbprint"]

log = logging.getLogger(__name__)


def thumbprint(cert: x509.Certificate) -> str:
    """SHA-1 thumbprint as UaExpert shows it (hex, upper case)."""
    return hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).hexdigest().upper()


@dataclass(frozen=True)
class OwnCertificate:
    cert_path: Path
    key_path: Path
    certificate: x509.Certificate


def _alt_names(app_uri: str, hosts: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(app_uri)]
    for host in dict.fromkeys(h for h in hosts if h):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def generate_certificate(
    app_uri: str,
    hosts: list[str],
    common_name: str,
    *,
    client: bool = False,
    days: int = 5 * 365,
    not_before: datetime | None = None,
    extended_usage: list[x509.ObjectIdentifier] | None = None,
    key_usage: x509.KeyUsage | None = None,
) -> tuple[x509.Certificate, bytes]:
    """A self-signed OPC UA application certificate (Part 6, 6.2.2) and its PEM private key; tests make client
    certificates with it. Valid from `not_before` (default now) for `days`; `extended_usage` / `key_usage`
    replace the usual ones (tests use them to make certificates a server must refuse)."""
    key = cert_gen.generate_private_key()
    if extended_usage is None:
        extended_usage = (
            [ExtendedKeyUsageOID.CLIENT_AUTH]
            if client
            else [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
        )
    if key_usage is None:
        key_usage = x509.KeyUsage(
            digital_signature=True,
            content_commitment=True,
            key_encipherment=True,
            data_encipherment=True,
            key_agreement=False,
            key_cert_sign=True,
            crl_sign=False,
            encipher_only=False,
            decipher_only=False,
        )
    start = not_before or datetime.now(UTC)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "wincc-opcua-bridge"),
        ]
    )
    serial = x509.random_serial_number()
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .serial_number(serial)
        .public_key(key.public_key())
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .add_extension(x509.SubjectAlternativeName(_alt_names(app_uri, hosts)), critical=False)
        # self-signed: it is its own issuer, as asyncua's and UaExpert's application certificates are
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=False)
        .add_extension(key_usage, critical=False)
    )
    if extended_usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(extended_usage), critical=False)
    cert = builder.sign(private_key=key, algorithm=hashes.SHA256())
    return cert, cert_gen.dump_private_key_as_pem(key)


def _matches(cert: x509.Certificate, app_uri: str, hosts: list[str]) -> bool:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    wanted = {str(n.value) for n in _alt_names(app_uri, hosts)}
    have = {str(v) for v in san.get_values_for_type(x509.UniformResourceIdentifier)}
    have |= set(san.get_values_for_type(x509.DNSName))
    have |= {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    return wanted <= have


def ensure_certificate(pki_dir: Path, app_uri: str, hosts: list[str], common_name: str) -> OwnCertificate:
    own = pki_dir / "own"
    cert_path, key_path = own / "cert.der", own / "private" / "key.pem"
    if cert_path.is_file() and key_path.is_file():
        cert = x509.load_der_x509_certificate(cert_path.read_bytes())
        if _matches(cert, app_uri, hosts):
            return OwnCertificate(cert_path, key_path, cert)
        log.warning(
            "server certificate %s does not match ApplicationUri/host names any more: making a new one", cert_path
        )
    cert, key_pem = generate_certificate(app_uri, hosts, common_name)
    key_path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(key_path.parent, 0o700)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_pem)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    log.info("made server certificate %s (thumbprint %s) for %s", cert_path, thumbprint(cert), app_uri)
    return OwnCertificate(cert_path, key_path, cert)


def default_hosts(public_hostname: str | None, bind_host: str) -> list[str]:
    hosts = [public_hostname or "", socket.gethostname(), "localhost", "127.0.0.1"]
    if bind_host not in ("0.0.0.0", "::", ""):
        hosts.insert(1, bind_host)
    return [h for h in dict.fromkeys(hosts) if h]
