"""Secure defaults for the OPC UA side: policies, certificate, trust list, identity tokens, request rights.

Call `apply_security(server, config)` after `server.init()` and before `server.start()` (asyncua builds the
endpoint descriptions at start).
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit, urlunsplit

from asyncua import Server, ua
from asyncua.crypto.permission_rules import ADMIN_TYPES, USER_TYPES, PermissionRuleset

from bridge.config import OpcUaConfig, Role
from bridge.opcua.security.certificates import default_hosts, ensure_certificate
from bridge.opcua.security.trust import TrustList
from bridge.opcua.security.users import role_of

__all__ = ["BridgeRuleset", "apply_security", "apply_trust", "endpoint_urls"]

log = logging.getLogger(__name__)

_POLICY = {
    "None": ua.SecurityPolicyType.NoSecurity,
    "Basic256Sha256_Sign": ua.SecurityPolicyType.Basic256Sha256_Sign,
    "Basic256Sha256_SignAndEncrypt": ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
    "Aes128Sha256RsaOaep_Sign": ua.SecurityPolicyType.Aes128Sha256RsaOaep_Sign,
    "Aes128Sha256RsaOaep_SignAndEncrypt": ua.SecurityPolicyType.Aes128Sha256RsaOaep_SignAndEncrypt,
    "Aes256Sha256RsaPss_Sign": ua.SecurityPolicyType.Aes256Sha256RsaPss_Sign,
    "Aes256Sha256RsaPss_SignAndEncrypt": ua.SecurityPolicyType.Aes256Sha256RsaPss_SignAndEncrypt,
}
_SESSION_TYPES = {
    ua.NodeId(i)
    for i in (
        ua.ObjectIds.CreateSessionRequest_Encoding_DefaultBinary,
        ua.ObjectIds.ActivateSessionRequest_Encoding_DefaultBinary,
        ua.ObjectIds.CloseSessionRequest_Encoding_DefaultBinary,
        ua.ObjectIds.GetEndpointsRequest_Encoding_DefaultBinary,
        ua.ObjectIds.FindServersRequest_Encoding_DefaultBinary,
        ua.ObjectIds.CloseSecureChannelRequest_Encoding_DefaultBinary,
    )
}
_USER_TYPES = {ua.NodeId(i) for i in USER_TYPES} | {ua.NodeId(ua.ObjectIds.BrowseNextRequest_Encoding_DefaultBinary)}
_ADMIN_TYPES = {ua.NodeId(i) for i in ADMIN_TYPES}


class BridgeRuleset(PermissionRuleset):
    """Which services a session may call at all, by bridge role. Per-node rights (write, history, call) are
    decided by the services themselves, so a reader's Write gets BadUserAccessDenied per node, not a failed
    request. Address-space changes (AddNodes, DeleteNodes, ...) are for admins only."""

    def check_validity(self, user: object, action_type_id: ua.NodeId, body: object) -> bool:
        if action_type_id in _SESSION_TYPES:
            return True
        role = role_of(user)
        if role is None:
            return False
        if action_type_id in _ADMIN_TYPES:
            return role is Role.admin
        return action_type_id in _USER_TYPES


def endpoint_urls(config: OpcUaConfig) -> tuple[str, str]:
    """(bind URL, advertised URL). The advertised host is `public_hostname`, else the endpoint's host, else
    (for 0.0.0.0) this machine's host name."""
    import socket

    parts = urlsplit(config.endpoint)
    host = parts.hostname or "0.0.0.0"
    port = parts.port or 4840
    public = config.public_hostname or (socket.gethostname() if host in ("0.0.0.0", "::") else host)
    advertised = urlunsplit((parts.scheme, f"{public}:{port}", parts.path, "", ""))
    return config.endpoint, advertised


async def apply_security(server: Server, config: OpcUaConfig) -> None:
    bind_url, public_url = endpoint_urls(config)
    bind = urlsplit(bind_url)
    server.set_endpoint(public_url)
    server.socket_address = (bind.hostname or "0.0.0.0", bind.port or 4840)
    if config.public_hostname:
        # asyncua rewrites every EndpointUrl in GetEndpoints/CreateSession to the host the client asked for (or
        # the local socket's IP). Behind Docker/NAT that is the container's address, or whatever the client
        # typed; the admin said what clients must use, so advertise exactly that. Without public_hostname,
        # asyncua's echo of the client's URL is kept: it is the one address known to reach us.
        server.set_match_discovery_endpoint_url(False)
        server.set_match_discovery_client_ip(False)

    await server.set_application_uri(config.application_uri)
    policies = [_POLICY[p] for p in config.security_policies]
    if "None" in config.security_policies:
        log.warning(
            "security policy None is enabled: traffic (and passwords, unless encrypted by the token "
            "policy) may cross the network in clear text; list it only for demos and tests"
        )
    if any(p != "None" for p in config.security_policies) or config.users:
        own = ensure_certificate(
            config.pki_dir,
            config.application_uri,
            default_hosts(config.public_hostname or urlsplit(public_url).hostname, bind.hostname or ""),
            config.server_name,
        )
        await server.load_certificate(str(own.cert_path))
        await server.load_private_key(str(own.key_path))
    server.set_security_policy(policies, permission_ruleset=BridgeRuleset())

    tokens: list[type] = [ua.UserNameIdentityToken] if config.users else []
    if config.anonymous == "read":
        tokens.insert(0, ua.AnonymousIdentityToken)
    if not tokens:
        log.warning("no users and anonymous: none: nobody can log in (add opcua.users)")
    server.set_identity_tokens(tokens)

    apply_trust(server, config)


def apply_trust(server: Server, config: OpcUaConfig) -> None:
    """The client certificate trust list from `pki_dir` and `auto_accept_client_certs` (at start and on reload)."""
    trust = TrustList(config.pki_dir, auto_accept=config.auto_accept_client_certs)
    if config.auto_accept_client_certs:
        log.warning("auto_accept_client_certs is on: any client certificate is trusted (demo only)")
    server.set_certificate_validator(trust)
