"""Client certificate trust list, the folder way plant admins know from UaExpert and WinCC.

`pki/trusted/` holds trusted client certificates (or CA certificates), `pki/issuers/` intermediate CAs,
`pki/crl/` revocation lists. An unknown certificate is refused (BadCertificateUntrusted), copied to
`pki/rejected/` and its thumbprint logged: the admin trusts it by moving that one file to `trusted/`. The folders
are read at every new session, so no restart is needed. asyncua's TrustStore raises on an empty folder, so it is
used only for chain and CRL checks when a CA is present.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from asyncua import ua
from asyncua.crypto.truststore import TrustStore
from asyncua.common.utils import ServiceError
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from bridge.opcua.certificates import thumbprint

__all__ = ["TrustList"]

log = logging.getLogger(__name__)

FOLDERS = ("trusted", "rejected", "issuers", "crl")


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
        if any(t.public_bytes(serialization.Encoding.DER) == cert.public_bytes(serialization.Encoding.DER)
               for t in trusted):
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
        label = re.sub(r"[^\w .-]", "_", str(cn[0].value) if cn else "client")[:64]
        path = self.pki_dir / "rejected" / f"{label} [{thumbprint(cert)}].der"
        path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
        return path

    async def __call__(self, cert: x509.Certificate, app_description: ua.ApplicationDescription) -> None:
        if self.auto_accept:
            log.info("client certificate %s accepted (auto_accept_client_certs)", thumbprint(cert))
            return
        if await self.is_trusted(cert):
            return
        path = self._reject(cert)
        log.warning(
            "client certificate of %s (thumbprint %s) is not trusted: saved as %s; move it to %s to trust it",
            app_description.ApplicationUri, thumbprint(cert), path, self.pki_dir / "trusted",
        )
        raise ServiceError(ua.StatusCodes.BadCertificateUntrusted)
