"""node-opcua over a secured channel: Basic256Sha256 SignAndEncrypt with a user and password and a client
certificate the bridge trusts (moved into pki/trusted/, as an admin would), next to the unsecured runs of
test_node_opcua.py. On SecurityPolicy None the same server ignores node-opcua's certificate (Part 4), trusted or
not, while its secured endpoint refuses an untrusted one."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from bridge.opcua.security.certificates import generate_certificate

pytestmark = pytest.mark.interop

NS_URI = "urn:wincc-opcua-bridge:tags"
SECURED = {"securityMode": "SignAndEncrypt", "securityPolicy": "Basic256Sha256"}


@pytest.fixture(scope="module")
def stack(bridge_stack):
    return bridge_stack(
        "dp",
        config={
            "opcua": {
                "security_policies": ["None", "Basic256Sha256_SignAndEncrypt"],
                "auto_accept_client_certs": False,
                "anonymous": "none",
            }
        },
    )


def _client_pki(tmp: Path, name: str) -> dict[str, str]:
    uri = f"urn:wincc-opcua-bridge:node-opcua-{name}"
    cert, key = generate_certificate(uri, ["localhost"], f"node-opcua {name}", client=True)
    (tmp / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "key.pem").write_bytes(key)
    (tmp / "cert.der").write_bytes(cert.public_bytes(serialization.Encoding.DER))
    return {
        "certificateFile": str(tmp / "cert.pem"),
        "privateKeyFile": str(tmp / "key.pem"),
        "applicationUri": uri,
        "pkiDir": str(tmp / "pki"),
    }


@pytest.fixture(scope="module")
def trusted(stack, tmp_path_factory) -> dict[str, str]:
    own = _client_pki(tmp_path_factory.mktemp("node-trusted"), "trusted")
    pki = Path(stack.config["opcua"]["pki_dir"])
    (pki / "trusted" / "node-opcua.der").write_bytes(Path(own["certificateFile"]).with_suffix(".der").read_bytes())
    return own


@pytest.fixture(scope="module")
def untrusted(tmp_path_factory) -> dict[str, str]:
    return _client_pki(tmp_path_factory.mktemp("node-untrusted"), "untrusted")


def spec(stack, steps, own, user="operator", **security):
    return {"endpoint": stack.endpoint, "user": user, "password": stack.users[user], "steps": steps, **own, **security}


def nsid(name: str) -> str:
    return f"nsu={NS_URI};s={name}"


def test_sign_and_encrypt_with_user_and_trusted_certificate(stack, node_client, trusted) -> None:
    out = node_client(
        spec(
            stack,
            [
                {"op": "read", "nodeId": nsid("System1.Counters.Int16Value")},
                {"op": "write", "nodeId": nsid("System1.Counters.Int16Value"), "dataType": "Int16", "value": 11},
                {"op": "read", "nodeId": nsid("System1.Counters.Int16Value")},
                {
                    "op": "subscribe",
                    "nodeId": nsid("System1.Tank1.Level"),
                    "samplingInterval": 200,
                    "count": 2,
                    "timeoutMs": 8000,
                },
                {"op": "read", "nodeId": "i=2267"},  # ServiceLevel
            ],
            trusted,
            **SECURED,
        )
    )
    first, written, after, sub, level = out
    assert "error" not in first and first["dataType"] == "Int16", out
    assert written["status"] == "Good" and after["value"] == 11
    assert len(sub["values"]) >= 2
    assert level["value"] >= 200


def test_secured_endpoint_refuses_an_untrusted_certificate(stack, node_client, untrusted) -> None:
    with pytest.raises(AssertionError, match="BadCertificateUntrusted|BadSecurityChecksFailed|certificate"):
        node_client(
            spec(stack, [{"op": "read", "nodeId": "i=2267"}], {**untrusted, "maxRetry": 0}, **SECURED), timeout=60
        )


def test_none_ignores_an_untrusted_certificate(stack, node_client, untrusted) -> None:
    out = node_client(spec(stack, [{"op": "read", "nodeId": nsid("System1.Tank1.Level")}], untrusted, user="reader"))
    assert "error" not in out[0] and out[0]["dataType"] == "Float", out
