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
from pathlib import Path

from asyncua.crypto import cert_gen
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

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
    app_uri: str, hosts: list[str], common_name: str, *, client: bool = False, days: int = 5 * 365
) -> tuple[x509.Certificate, bytes]:
    """A self-signed OPC UA application certificate and its PEM private key (also used by tests for clients)."""
    key = cert_gen.generate_private_key()
    usage = [ExtendedKeyUsageOID.CLIENT_AUTH] if client else [ExtendedKeyUsageOID.SERVER_AUTH,
                                                                ExtendedKeyUsageOID.CLIENT_AUTH]
    cert = cert_gen.generate_self_signed_app_certificate(
        key, common_name, {"organizationName": "wincc-opcua-bridge"}, _alt_names(app_uri, hosts), usage, days=days
    )
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
        log.warning("server certificate %s does not match ApplicationUri/host names any more: making a new one",
                    cert_path)
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
