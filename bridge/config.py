"""YAML -> validated, typed configuration.

Every section is a frozen pydantic model that rejects unknown keys, so a typo in a plant's config is an error
at start-up and not a silently ignored setting. Secrets never live in the YAML: passwords come from an
environment variable (`password_env`) or a file (`password_file`) and are held as `SecretStr`, which masks
itself in every repr. `load_config` raises `ConfigError` with the key path and, where the YAML has one, the
line number; the CLI turns that into exit code 2. Every problem of a file is reported, not only the first.

`parse_config(..., require_secrets=False)` (what `check-config` uses) validates the structure on a machine that
does not hold the plant's secrets: an unset password variable or an unreadable password file becomes a warning.
Risky values that are still valid (the examples' placeholder password hashes) are `BridgeConfig.warnings`;
those marked `refuse_serving` stop `run`.
"""

from __future__ import annotations

import os
import re
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bridge.config_problems import (
    ConfigError,
    ConfigWarning,
    error_message,
    key_lines,
    key_name,
    line_for,
)

__all__ = [
    "AlarmsConfig",
    "AuthConfig",
    "BridgeConfig",
    "ConfigError",
    "ConfigWarning",
    "HealthConfig",
    "HistoryConfig",
    "LogConfig",
    "OpcUaConfig",
    "OpcUaLimitsConfig",
    "RedundancyConfig",
    "Role",
    "SyncConfig",
    "TlsConfig",
    "UserConfig",
    "WinCCConfig",
    "load_config",
    "parse_config",
]


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


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _SecretMissing(ValueError):
    """A secret's source is named correctly but not available on this machine (variable unset, file unreadable)."""


def _read_secret(env: str | None, file: Path | None, what: str) -> SecretStr | None:
    """Resolve a secret from its environment variable or file; raise ValueError naming the source only."""
    if env and file:
        raise ValueError(f"give either {what}_env or {what}_file, not both")
    if env:
        value = os.environ.get(env)
        if value is None:
            raise _SecretMissing(f"environment variable {env} (from {what}_env) is not set")
        return SecretStr(value)
    if file:
        try:
            return SecretStr(Path(file).read_text(encoding="utf-8").rstrip("\r\n"))
        except OSError as exc:
            raise _SecretMissing(f"cannot read {what}_file {file}: {exc.strerror}") from None
    return None


def _secret_or_warning(env: str | None, file: Path | None, what: str, info: ValidationInfo) -> SecretStr | None:
    """`_read_secret`, except that with `require_secrets=False` a secret this machine lacks is a warning."""
    try:
        return _read_secret(env, file, what)
    except _SecretMissing as exc:
        context = info.context or {}
        if context.get("require_secrets", True):
            raise
        context.setdefault("missing_secrets", []).append(f"{exc}: `run`, `browse` and `export-nodeset` need it")
        return None


class AuthConfig(_Section):
    mode: Literal["none", "basic", "token"] = "none"
    username: str | None = None
    password_env: str | None = None
    password_file: Path | None = None
    _password: SecretStr | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _resolve(self, info: ValidationInfo) -> AuthConfig:
        if self.mode != "none" and not self.username:
            raise ValueError(f"auth mode {self.mode!r} needs a username")
        self._password = _secret_or_warning(self.password_env, self.password_file, "password", info)
        if self.mode != "none" and not (self.password_env or self.password_file):
            raise ValueError(f"auth mode {self.mode!r} needs password_env or password_file")
        return self

    @property
    def password(self) -> SecretStr | None:
        return self._password


class TlsConfig(_Section):
    verify: bool = True
    ca_file: Path | None = None

    @field_validator("ca_file")
    @classmethod
    def _ca_exists(cls, v: Path | None) -> Path | None:
        if v is not None and not Path(v).is_file():
            raise ValueError(f"CA file {v} does not exist")
        return v


class TimeoutsConfig(_Section):
    connect_s: float = Field(default=5.0, gt=0)
    read_s: float = Field(default=10.0, gt=0)
    write_s: float = Field(default=10.0, gt=0)


class RetryConfig(_Section):
    attempts: int = Field(default=3, ge=1, le=20)
    backoff_s: float = Field(default=0.5, ge=0)
    max_backoff_s: float = Field(default=30.0, gt=0)


class AcknowledgeRequest(_Section):
    """restservice has no acknowledge call; a site that has one (e.g. a script endpoint) names it here.

    `path` may contain `{id}`; `body` is a JSON template whose string values may contain `{id}`, `{comment}`
    and `{user}`.
    """

    method: Literal["POST", "PUT"] = "POST"
    path: str
    body: dict[str, Any] = Field(default_factory=dict)


class WinCCConfig(_Section):
    # required: a default address would let a config that forgot it run against whatever answers there
    url: str = Field(
        description="the WinCC REST base URL, e.g. https://wincc-host:8700 (dp), "
        "https://wincc-host:34568/WinCCRestService (restservice) or "
        "https://unified-host/graphql (unified)"
    )
    dialect: Literal["dp", "restservice", "unified"] = "dp"
    ws_url: str | None = Field(default=None, description="unified: the WebSocket URL (default: url with ws/wss)")
    auth: AuthConfig = Field(default_factory=AuthConfig)
    tls: TlsConfig = Field(default_factory=TlsConfig)
    browse_root: str = ""
    timeouts: TimeoutsConfig = Field(default_factory=TimeoutsConfig)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    max_concurrency: int = Field(default=4, ge=1, le=256)
    requests_per_second: float | None = Field(default=None, gt=0)
    browse_page_size: int = Field(default=1000, ge=1, le=100_000)
    rebrowse_s: float = Field(default=0, ge=0, description="0 = browse only at start")
    browse_snapshot: Path | None = Field(
        default=Path("nodesets/last-browse.xml"),
        description="NodeSet2 model of the last good browse; used at start when WinCC is unreachable (null = off)",
    )
    acknowledge: AcknowledgeRequest | None = None
    # tag selection (bridge/wincc/selection.py): shell-style globs on the exact tag name, case-sensitive
    include: list[str] = Field(default_factory=list, description="serve only tags matching one of these (empty: all)")
    exclude: list[str] = Field(default_factory=list, description="never serve tags matching one of these")
    browse_roots: list[str] = Field(default_factory=list, description="several roots; browse_root is the one-root form")
    name: str | None = Field(default=None, description="the station's folder under Objects/WinCC (sources only)")

    @field_validator("include", "exclude", "browse_roots")
    @classmethod
    def _no_blank(cls, v: list[str]) -> list[str]:
        if any(not isinstance(p, str) or not p.strip() for p in v):
            raise ValueError("entries must be non-empty text")
        return v

    @model_validator(mode="after")
    def _one_root_form(self) -> WinCCConfig:
        if self.browse_root and self.browse_roots:
            raise ValueError("give browse_root or browse_roots, not both")
        return self

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError("must be an http:// or https:// URL")
        if "@" in v.split("//", 1)[1].split("/", 1)[0]:
            raise ValueError("credentials do not belong in the URL; use wincc.auth")
        return v.rstrip("/")


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


class UserConfig(_Section):
    name: str = Field(min_length=1)
    password_hash: SecretStr
    role: Role = Role.reader

    @field_validator("password_hash")
    @classmethod
    def _is_hash(cls, v: SecretStr) -> SecretStr:
        if not _HASH_RE.match(v.get_secret_value()):
            raise ValueError("must be a scrypt$... hash from `wincc-opcua-bridge hash-password`, not a password")
        return v


class RedundancyConfig(_Section):
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


class OpcUaLimitsConfig(_Section):
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


class OpcUaConfig(_Section):
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


class SyncConfig(_Section):
    interval_ms: int = Field(default=1000, ge=50, description="default poll group; also the fastest offered")
    batch_size: int = Field(default=500, ge=1, le=100_000)
    poll_groups_ms: list[int] = Field(
        default_factory=lambda: [1000, 5000, 10000],
        description="poll intervals a client's sampling interval is rounded up to",
    )
    idle_interval_ms: int = Field(default=10_000, ge=100, description="tags nobody subscribed or read recently")
    read_recent_s: float = Field(default=60.0, ge=0, description="a Read keeps a tag in fast polling this long")
    on_failure: Literal["bad", "uncertain"] = "bad"
    max_backoff_s: float = Field(default=30.0, gt=0)
    max_age_wait_ms: int = Field(
        default=250,
        ge=0,
        le=60_000,
        description="a Read whose MaxAge the cache cannot meet waits this long for WinCC, then the cache answers",
    )


class HistoryAggregatesConfig(_Section):
    """Server defaults of the Part 13 AggregateConfiguration (used when a ReadProcessed request asks for them)."""

    treat_uncertain_as_bad: bool = True
    percent_data_bad: int = Field(default=100, ge=0, le=100)
    percent_data_good: int = Field(default=100, ge=0, le=100)
    use_sloped_extrapolation: bool = False


class HistoryConfig(_Section):
    enabled: bool = True
    max_concurrency: int = Field(default=4, ge=1, le=64)
    page_size: int = Field(default=1000, ge=1, le=100_000, description="values per archive REST request")
    max_continuation_points: int = Field(default=100, ge=1)
    max_values_per_read: int = Field(
        default=10_000,
        ge=1,
        le=1_000_000,
        description="values (raw) or intervals (processed) per node in one HistoryRead answer; more come with a "
        "continuation point. Advertised as HistoryServerCapabilities.MaxReturnDataValues",
    )
    max_requests_per_read: int = Field(
        default=100,
        ge=2,
        le=100_000,
        description="archive REST requests per node in one HistoryRead answer; past it the answer ends with a "
        "continuation point (twice it without a point to resume from: BadTooManyOperations)",
    )
    max_read_s: float = Field(
        default=1.0,
        gt=0,
        description="seconds of archive work in one HistoryRead (same; "
        "asyncua clients give up on a server whose keep-alive read waits much longer)",
    )
    aggregates: HistoryAggregatesConfig = Field(default_factory=HistoryAggregatesConfig)


class AlarmsConfig(_Section):
    enabled: bool = True
    poll_ms: int = Field(default=1000, ge=100)


class HealthConfig(_Section):
    listen: str | None = "127.0.0.1:8081"

    @field_validator("listen")
    @classmethod
    def _host_port(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^[^\s:]*:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$", v):
            raise ValueError("must be host:port, e.g. 127.0.0.1:8081")
        return v


class LogConfig(_Section):
    level: Literal["debug", "info", "warning", "error"] | None = Field(
        default=None,
        description="overrides --log-level; re-read on SIGHUP (null: the command line's level)",
    )


_SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class BridgeConfig(_Section):
    wincc: WinCCConfig = Field(description="the WinCC REST API to serve (at least its url)")
    sources: list[WinCCConfig] = Field(
        default_factory=list,
        description="several WinCC stations, each a `wincc:` block with a name; `wincc:` then holds their defaults",
    )
    opcua: OpcUaConfig = Field(default_factory=OpcUaConfig)
    sync: SyncConfig = Field(default_factory=SyncConfig)
    history: HistoryConfig = Field(default_factory=HistoryConfig)
    alarms: AlarmsConfig = Field(default_factory=AlarmsConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    _warnings: tuple[ConfigWarning, ...] = PrivateAttr(default=())

    @property
    def warnings(self) -> tuple[ConfigWarning, ...]:
        """Valid but risky or incomplete settings, for the CLI to log (see ConfigWarning.refuse_serving)."""
        return self._warnings

    @model_validator(mode="before")
    @classmethod
    def _source_defaults(cls, data: Any) -> Any:
        """With `sources:`, every key of `wincc:` is a default each source may override (auth, timeouts...)."""
        if not isinstance(data, dict) or not isinstance(data.get("sources"), list):
            return data
        defaults = data.get("wincc") if isinstance(data.get("wincc"), dict) else {}
        sources = [_deep_merge(defaults, s) if isinstance(s, dict) else s for s in data["sources"]]
        out = {**data, "sources": sources}
        if "url" not in defaults and sources and isinstance(sources[0], dict) and "url" in sources[0]:
            # `wincc:` only holds the defaults here and needs no url of its own (each source has one; without
            # sources wincc.url is required)
            out["wincc"] = {**defaults, "url": sources[0]["url"]}
        return out

    @field_validator("sources")
    @classmethod
    def _named_sources(cls, v: list[WinCCConfig]) -> list[WinCCConfig]:
        names = [s.name for s in v]
        for i, name in enumerate(names):
            if not name:
                raise ValueError(f"sources[{i}] needs a name (its folder under Objects/WinCC and NodeId prefix)")
            if not _SOURCE_NAME.match(name):
                raise ValueError(f"source name {name!r}: use letters, digits, '_', '-', '.' (no '/'), at most 64")
        dupes = sorted({n for n in names if names.count(n) > 1 and n})
        if dupes:
            raise ValueError(f"source names must be unique: {', '.join(str(d) for d in dupes)}")
        return v

    @model_validator(mode="after")
    def _name_only_in_sources(self) -> BridgeConfig:
        if self.wincc.name is not None and not self.sources:
            raise ValueError("wincc.name is only for the entries of sources:")
        return self

    def stations(self) -> list[WinCCConfig]:
        """The WinCC stations to serve: every source, or the one `wincc:`."""
        return list(self.sources) if self.sources else [self.wincc]

    def masked(self) -> dict[str, Any]:
        """The effective config as plain data, every secret replaced by '***'."""
        return _mask(self.model_dump(mode="json"))


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _mask(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: ("***" if k in ("password_hash", "password", "token") and v else _mask(v)) for k, v in data.items()}
    if isinstance(data, list):
        return [_mask(v) for v in data]
    return data


def _placeholder_hashes(config: BridgeConfig, lines: dict[tuple[Any, ...], int]) -> list[ConfigWarning]:
    """The examples' `scrypt$...REPLACEwithREAL...` hashes are well-formed and can never match a password."""
    found = []
    for i, user in enumerate(config.opcua.users):
        if "replace" in user.password_hash.get_secret_value().lower():
            loc = ("opcua", "users", i, "password_hash")
            found.append(
                ConfigWarning(
                    f"user {user.name!r} has the example's placeholder hash, so nobody can log in as {user.name!r}; "
                    "make a real one with `wincc-opcua-bridge hash-password`",
                    key=key_name(loc),
                    line=line_for(loc, lines),
                    refuse_serving=True,
                )
            )
    return found


def parse_config(text: str, source: str = "<config>", *, require_secrets: bool = True) -> BridgeConfig:
    """Validate YAML text. Raises ConfigError naming every bad key and its line.

    `require_secrets=False`: a password variable that is not set (or a password file that cannot be read) is a
    warning in `BridgeConfig.warnings`, not an error, so the structure can be checked anywhere."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(f"{source} is not valid YAML: {getattr(exc, 'problem', exc)}", line=line) from None
    if data is None:
        data, node = {}, None
    if not isinstance(data, dict):
        raise ConfigError(f"{source} must be a mapping of sections (wincc, opcua, sync, ...)", line=1)
    lines = key_lines(node) if node is not None else {}
    context: dict[str, Any] = {"require_secrets": require_secrets}
    try:
        config = BridgeConfig.model_validate(data, context=context)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False, include_input=False):
            loc = tuple(err["loc"])
            problems.append(
                ConfigError(error_message(BridgeConfig, err, loc), key=key_name(loc) or None, line=line_for(loc, lines))
            )
        # in the file's order (pydantic's is the models' field order); problems without a line last
        problems.sort(key=lambda e: e.line if e.line is not None else 1 << 30)
        first = problems[0]
        raise ConfigError(first.message, key=first.key, line=first.line, more=problems[1:]) from None
    secrets = [
        ConfigWarning(m, key="wincc.auth", line=line_for(("wincc", "auth"), lines))
        for m in dict.fromkeys(context.get("missing_secrets", []))
    ]  # with sources: once per variable
    config._warnings = (*secrets, *_placeholder_hashes(config, lines))
    return config


def load_config(path: str | Path, *, require_secrets: bool = True) -> BridgeConfig:
    """Read and validate a config file. Raises ConfigError (never another exception) when it cannot be used."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {p} is not UTF-8 text") from None
    return parse_config(text, source=str(p), require_secrets=require_secrets)
