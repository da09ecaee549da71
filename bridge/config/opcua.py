"""The `opcua:` section: endpoint, security policies, users and their roles, write rules, redundancy, limits."""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bridge.config.base import Section


class Role(StrEnum):
    """What an OPC UA user may do. Each role includes the rights of the ones before it."""

    reader = "reader"  # browse, read, subscribe, read history
    operator = "operator"  # + write tags, acknowledge alarms
    admin = "admin"  # + admin methods

    @property
    def can_write(self) -> bool:
        return self in (Role.operator, Role.admin)

    @property
    def can_acknowledge(self) -> bool:
        return self in (Role.operator, Role.admin)

    @property
    def is_admin(self) -> bool:
        return self is Role.admin


_SECURE_POLICIES = (
    "Basic256Sha256_Sign",
    "Basic256Sha256_SignAndEncrypt",
    "Aes128Sha256RsaOaep_Sign",
    "Aes128Sha256RsaOaep_SignAndEncrypt",
    "Aes256Sha256RsaPss_Sign",
    "Aes256Sha256RsaPss_SignAndEncrypt",
)
_POLICIES = {"None", *_SECURE_POLICIES}
_DEPRECATED_POLICIES = {"Basic128Rsa15", "Basic256"}
_HASH_RE = re.compile(r"^scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$")


class UserConfig(Section):
    name: str = Field(min_length=1)
    password_hash: SecretStr
    role: Role = Role.reader

    @field_validator("password_hash")
    @classmethod
    def _is_hash(cls, v: SecretStr) -> SecretStr:
        if not _HASH_RE.match(v.get_secret_value()):
            raise ValueError("must be a scrypt$... hash from `wincc-opcua-bridge hash-password`, not a password")
        return v


class RedundancyConfig(Section):
    """Part 4 server redundancy: the mode this server takes part in and the other servers' ServerUris."""

    mode: Literal["none", "cold", "warm", "hot"] = "none"
    partners: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _partners_fit_the_mode(self) -> RedundancyConfig:
        if self.mode == "none" and self.partners:
            raise ValueError("partners are listed but mode is none (cold, warm or hot?)")
        if self.mode != "none" and not self.partners:
            raise ValueError(f"mode {self.mode} needs the partners' ServerUris (their opcua.application_uri)")
        if any(not p.strip() for p in self.partners) or len(set(self.partners)) != len(self.partners):
            raise ValueError("partners must be distinct, non-empty ServerUris")
        return self


class OpcUaLimitsConfig(Section):
    """What one client may cost the server before it is refused (hostile or broken clients; see README)."""

    hello_timeout_s: float = Field(default=5.0, gt=0, description="a new connection must send HEL within this")
    activation_timeout_s: float = Field(
        default=15.0, gt=0, description="... and be without an activated session no longer than this"
    )
    max_connections: int = Field(default=500, ge=1, description="open TCP connections in all")
    max_connections_per_address: int = Field(default=50, ge=1, description="open TCP connections per client address")
    max_chunk_size: int = Field(default=65535, ge=8192, le=16 * 1024 * 1024, description="bytes per message chunk")
    max_message_size: int = Field(
        default=16 * 1024 * 1024, ge=8192, le=1024 * 1024 * 1024, description="bytes per request, all chunks together"
    )
    max_string_length: int = Field(default=65535, ge=1, description="characters of a String written to a tag")
    max_byte_string_length: int = Field(default=1024 * 1024, ge=1, description="bytes of a ByteString written")
    max_array_length: int = Field(default=65535, ge=1, description="elements of an array written to a tag")


class OpcUaConfig(Section):
    endpoint: str = "opc.tcp://0.0.0.0:4840/wincc"
    public_hostname: str | None = Field(
        default=None, description="hostname clients use (Docker/NAT); default: the endpoint's host, or this host"
    )
    namespace_uri: str = "urn:wincc-opcua-bridge:tags"
    application_uri: str = "urn:wincc-opcua-bridge:server"
    server_name: str = "WinCC OPC UA Bridge"
    security_policies: list[str] = Field(default_factory=lambda: list(_SECURE_POLICIES))
    users: list[UserConfig] = Field(default_factory=list)
    anonymous: Literal["none", "read"] = "none"
    pki_dir: Path = Path("./pki")
    auto_accept_client_certs: bool = False
    write_rules: dict[str, list[str]] = Field(
        default_factory=dict,
        description="user name -> glob patterns of tags that user may write; users not listed may write all",
    )
    max_references_per_node: int = Field(default=1000, ge=10, description="Browse page size when the client sets none")
    failed_login_limit: int = Field(default=5, ge=1, description="failed logins per client per minute")
    max_session_timeout_s: float = Field(
        default=600,
        ge=10,
        le=86_400,
        description="the longest session timeout granted; a session whose client vanished keeps its subscriptions "
        "(and their memory) this long, for the client to come back",
    )
    redundancy: RedundancyConfig = Field(default_factory=RedundancyConfig)
    limits: OpcUaLimitsConfig = Field(default_factory=OpcUaLimitsConfig)

    @field_validator("redundancy")
    @classmethod
    def _not_its_own_partner(cls, v: RedundancyConfig, info: ValidationInfo) -> RedundancyConfig:
        if info.data.get("application_uri") in v.partners:
            raise ValueError("partners lists this server's own application_uri")
        return v

    @field_validator("endpoint")
    @classmethod
    def _opc_tcp(cls, v: str) -> str:
        if not re.match(r"^opc\.tcp://[^/\s:]+(:\d+)?(/.*)?$", v):
            raise ValueError("must look like opc.tcp://host:port/path")
        return v

    @field_validator("security_policies")
    @classmethod
    def _known_policies(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("list at least one security policy")
        for p in v:
            if p.split("_")[0] in _DEPRECATED_POLICIES:
                raise ValueError(f"{p} is deprecated and insecure; use Basic256Sha256 or Aes*")
            if p not in _POLICIES:
                raise ValueError(f"unknown security policy {p!r}; known: {', '.join(sorted(_POLICIES))}")
        return v

    @field_validator("users")
    @classmethod
    def _unique_users(cls, v: list[UserConfig]) -> list[UserConfig]:
        # a field validator, so the error names opcua.users (and its line), not the whole opcua section
        names = [u.name for u in v]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"user names must be unique: {', '.join(dupes)}")
        return v
