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

The sections' models are in wincc.py, opcua.py and services.py (on base.py: what a section is, and secrets), the
whole file's model in root.py, reading and validating it in load.py; every public name is importable from here.
"""

from __future__ import annotations

from bridge.config.load import load_config, parse_config
from bridge.config.opcua import OpcUaConfig, OpcUaLimitsConfig, RedundancyConfig, Role, UserConfig
from bridge.config.root import BridgeConfig
from bridge.config.services import AlarmsConfig, HealthConfig, HistoryConfig, LogConfig, SyncConfig
from bridge.config.wincc import AuthConfig, TlsConfig, WinCCConfig
from bridge.config_problems import ConfigError, ConfigWarning

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
