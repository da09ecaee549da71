"""Client certificate trust list, the folder way plant admins know from UaExpert and WinCC.

`pki/trusted/` holds trusted client certificates (or CA certificates), `pki/issuers/` intermediate CAs,
`pki/crl/` revocation lists. An unknown certificate is refused (BadCertificateUntrusted), copied to
`pki/rejected/<name>_<thumbprint>.der` (letters, digits, `.`, `-` and `_` only, so the name needs no quoting in a
shell or `docker exec`) and its thumbprint logged: the admin trusts it by moving that one file to `trusted/`. The
folders are read at every new session, so no restart is needed. asyncua's TrustStore raises on an empty folder, so it
is used only for chain and CRL checks when a CA is present.

asyncua calls only this validator, so it does every check of Part 4, 6.1.3 itself, nearly in the
spec's order: trust and revocation (unless `auto_accept`), then on the client's own certificate the validity
period (BadCertificateTimeInvalid), the ApplicationUri in the SubjectAltName against the client's
ApplicationDescription (BadCertificateUriInvalid) and the use (BadCertificateUseNotAllowed: KeyUsage, when
present, must allow digitalSignature and key or data encipherment; ExtendedKeyUsage, when present, must include
clientAuth). Each decision is one log line with the thumbprint: a refusal at WARNING with its reason, an
acceptance at INFO under `auto_accept` (DEBUG for a trusted one: it repeats at every session). `auto_accept`
trusts any issuer, never an expired or mismatched certificate.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from pathlib import Path

from asyncua import ua
from asyncua.common.utils import ServiceError
from asyncua.crypto.truststore import TrustStore
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from bridge.opcua.security.certificates import thumbprint

__all__ = ["TrustList", "certificate_problem"]

log = logging.getLogger(__name__)

FOLDERS = ("trusted", "rejected", "issuers", "crl")


S = ua.StatusCodes


def _load(path: Path) -> x509.Certificate | None:
    data = path.read_bytes()
    try:
        return x509.load_der_x509_certificate(data)
    except ValueError:
        try:
            return x509.load_pem_x509_certificate(data)
        except ValueError:
            return None


class TrustList:
    """A certificate validator for `Server.set_certificate_validator`."""

    def __init__(self, pki_dir: Path, *, auto_accept: bool = False) -> None:
        self.pki_dir = pki_dir
        self.auto_accept = auto_accept
        for name in FOLDERS:
            (pki_dir / name).mkdir(parents=True, exist_ok=True)

    def _trusted(self) -> list[x509.Certificate]:
        return [c for p in sorted((self.pki_dir / "trusted").iterdir()) if p.is_file() and (c := _load(p))]

    async def is_trusted(self, cert: x509.Certificate) -> bool:
        trusted = self._trusted()
        if any(
            t.public_bytes(serialization.Encoding.DER) == cert.public_bytes(serialization.Encoding.DER) for t in trusted
        ):
            return await self._not_revoked(cert)
        cas = [t for t in trusted if t.subject == cert.issuer and t.subject != cert.subject]
        if not cas:
            return False
        store = TrustStore([self.pki_dir / "trusted", self.pki_dir / "issuers"], self._crl_locations())
        await store.load()
        return store.validate(cert)

    def _crl_locations(self) -> list[Path]:
        crl = self.pki_dir / "crl"
        return [crl] if any(crl.iterdir()) else []

    async def _not_revoked(self, cert: x509.Certificate) -> bool:
        locations = self._crl_locations()
        if not locations:
            return True
        store = TrustStore([], locations)
        await store.load_crl()
        return not store.is_revoked(cert)

    def _reject(self, cert: x509.Certificate) -> Path:
        cn = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        label = re.sub(r"[^A-Za-z0-9.-]+", "_", str(cn[0].value) if cn else "client").strip("._-")[:64] or "client"
        path = self.pki_dir / "rejected" / f"{label}_{thumbprint(cert)}.der"
        path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
        return path

    async def __call__(self, cert: x509.Certificate, app_description: ua.ApplicationDescription) -> None:
        if not self.auto_accept and not await self.is_trusted(cert):
            path = self._reject(cert)
            log.warning(
                "client certificate of %s (thumbprint %s) is not trusted: saved as %s; move it to %s to trust it",
                app_description.ApplicationUri,
                thumbprint(cert),
                path,
                self.pki_dir / "trusted",
            )
            raise ServiceError(S.BadCertificateUntrusted)
        problem = certificate_problem(cert, app_description)
        if problem is not None:
            code, why = problem
            log.warning(
                "client certificate of %s (thumbprint %s) refused (%s): %s",
                app_description.ApplicationUri,
                thumbprint(cert),
                ua.StatusCode(code).name,
                why,
            )
            raise ServiceError(code)
        if self.auto_accept:
            log.info(
                "client certificate of %s (thumbprint %s) accepted (auto_accept_client_certs)",
                app_description.ApplicationUri,
                thumbprint(cert),
            )
        else:
            log.debug(
                "client certificate of %s (thumbprint %s) accepted (trusted)",
                app_description.ApplicationUri,
                thumbprint(cert),
            )


def certificate_problem(
    cert: x509.Certificate, app: ua.ApplicationDescription, now: datetime | None = None
) -> tuple[int, str] | None:
    """Why a client's application certificate cannot be used, as (StatusCode, reason), or None if it can."""
    now = now or datetime.now(UTC)
    if now < cert.not_valid_before_utc:
        return S.BadCertificateTimeInvalid, f"not valid before {cert.not_valid_before_utc.isoformat()}"
    if now > cert.not_valid_after_utc:
        return S.BadCertificateTimeInvalid, f"expired on {cert.not_valid_after_utc.isoformat()}"
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        uris = []
    if app.ApplicationUri not in uris:
        return S.BadCertificateUriInvalid, (
            f"the client says its ApplicationUri is {app.ApplicationUri!r}, the certificate names {uris or 'none'}"
        )
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None  # no KeyUsage: X.509 allows every use
    if usage is not None and not (usage.digital_signature and (usage.key_encipherment or usage.data_encipherment)):
        return S.BadCertificateUseNotAllowed, "KeyUsage lacks digitalSignature or key/data encipherment"
    try:
        extended = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        extended = None
    if extended is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in extended:
        return S.BadCertificateUseNotAllowed, "ExtendedKeyUsage does not include clientAuth"
    return None
