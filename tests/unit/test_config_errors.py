"""Bad configs are rejected with one message naming the key (and line); secrets never show."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.config import ConfigError, Role, load_config, parse_config
from bridge.opcua.security.passwords import hash_password, verify_password

URL = "wincc: {url: 'http://127.0.0.1:1'}\n"  # wincc.url is required; appended last, so line numbers stay


def test_typo_names_key_and_line() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config("wincc:\n  url: http://a:1\n  dialekt: dp\n")
    assert err.value.key == "wincc.dialekt"
    assert err.value.line == 3
    assert "unknown key" in str(err.value)


def test_wrong_type_names_key() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config("sync:\n  interval_ms: fast\n" + URL)
    assert err.value.key == "sync.interval_ms" and err.value.line == 2


def test_missing_env_password() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(
            "wincc:\n  auth: {mode: basic, username: u, password_env: NO_SUCH_VAR_FOR_TEST}\n  url: http://a:1\n"
        )
    assert "NO_SUCH_VAR_FOR_TEST" in str(err.value) and err.value.key == "wincc.auth"


def test_unreadable_password_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(
            f"wincc:\n  auth: {{mode: basic, username: u, password_file: {tmp_path / 'missing'}}}\n  url: http://a:1\n"
        )
    assert "password_file" in str(err.value)


def test_plain_password_instead_of_hash_is_rejected() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config("opcua:\n  users:\n    - {name: op, password_hash: secret123, role: operator}\n" + URL)
    assert err.value.key == "opcua.users[0].password_hash"
    assert "secret123" not in str(err.value)


@pytest.mark.parametrize("policy", ["Basic128Rsa15_SignAndEncrypt", "Basic256_Sign"])
def test_deprecated_policy_refused(policy: str) -> None:
    with pytest.raises(ConfigError, match="deprecated"):
        parse_config(f"opcua:\n  security_policies: [{policy}]\n" + URL)


def test_secrets_masked_everywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_WINCC_PW", "s3cr3t-wincc")
    h = hash_password("op-pass")
    cfg = parse_config(
        "wincc:\n  auth: {mode: basic, username: u, password_env: T_WINCC_PW}\n  url: http://a:1\n"
        f"opcua:\n  users:\n    - {{name: op, password_hash: '{h}', role: operator}}\n"
    )
    assert cfg.wincc.auth.password is not None and cfg.wincc.auth.password.get_secret_value() == "s3cr3t-wincc"
    assert cfg.opcua.users[0].role is Role.operator
    for text in (repr(cfg), str(cfg), str(cfg.masked())):
        assert "s3cr3t-wincc" not in text and h not in text


def test_unreadable_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml")


def test_password_hash_roundtrip() -> None:
    h = hash_password("pw")
    assert verify_password("pw", h) and not verify_password("pW", h) and not verify_password("pw", "scrypt$x")


def _cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args], input=stdin, capture_output=True, text=True, timeout=60
    )


def test_cli_help_lists_commands() -> None:
    done = _cli("--help")
    assert done.returncode == 0
    for cmd in ("run", "demo", "simulate", "check-config", "hash-password", "browse", "export-nodeset"):
        assert cmd in done.stdout


def test_cli_check_config_typo_exits_2(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("opcua:\n  endpiont: opc.tcp://x:4840\n" + URL)
    done = _cli("check-config", str(f))
    assert done.returncode == 2
    assert "opcua.endpiont" in done.stderr and "line 2" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_required_value_missing_names_key_and_line() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config("wincc:\n  url: http://a:1\n  acknowledge:\n    method: POST\n")
    assert err.value.key == "wincc.acknowledge.path"
    assert err.value.line == 3  # the acknowledge block that lacks it
    assert "required value is missing" in str(err.value)


def test_duplicate_user_names_refused() -> None:
    h = hash_password("x")
    with pytest.raises(ConfigError) as err:
        parse_config(
            f"opcua:\n  users:\n    - {{name: op, password_hash: '{h}'}}\n"
            f"    - {{name: op, password_hash: '{h}', role: admin}}\n" + URL
        )
    assert err.value.key == "opcua.users" and err.value.line == 2
    assert "unique: op" in str(err.value) and h not in str(err.value)


def test_unknown_security_policy_refused() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config("opcua:\n  security_policies: [Basic256Sha256_Sign, Aes512_Sign]\n" + URL)
    assert err.value.key == "opcua.security_policies" and err.value.line == 2
    assert "unknown security policy 'Aes512_Sign'" in str(err.value)


# (name, YAML, key the one line must name, its line) for `check-config`; CLI_CFG_FILE becomes a path that cannot
# be read, HASH a valid password hash
CLI_CASES = [
    ("missing-value", "wincc:\n  acknowledge: {method: POST}\n  url: http://a:1\n", "wincc.acknowledge.path", 2),
    ("missing-url", "wincc:\n  dialect: dp\n", "wincc.url", 1),
    ("missing-wincc", "sync: {interval_ms: 1000}\n", "wincc", 1),
    (
        "duplicate-user",
        "opcua:\n  users:\n    - {name: op, password_hash: HASH}\n    - {name: op, password_hash: HASH}\n" + URL,
        "opcua.users",
        2,
    ),
    ("deprecated-policy", "opcua:\n  security_policies: [Basic256]\n" + URL, "opcua.security_policies", 2),
    ("unknown-policy", "opcua:\n  security_policies: [Basic256Sha512_Sign]\n" + URL, "opcua.security_policies", 2),
]


@pytest.mark.parametrize(("yaml_text", "key", "line"), [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_cli_check_config_bad_value_exits_2_with_one_line(tmp_path: Path, yaml_text: str, key: str, line: int) -> None:
    f = tmp_path / "bad.yaml"
    text = yaml_text.replace("CLI_CFG_FILE", str(tmp_path / "no-such-dir" / "pw.txt"))
    f.write_text(text.replace("HASH", f"'{hash_password('x')}'"))
    done = _cli("check-config", str(f))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"config error: line {line}: {key}: "), lines[0]
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_cli_run_bad_config_exits_2(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("sync: {batch_size: 0}\n" + URL)
    done = _cli("run", "--config", str(f))
    assert done.returncode == 2 and "sync.batch_size" in done.stderr


def test_cli_check_config_masks(tmp_path: Path) -> None:
    h = hash_password("x")
    f = tmp_path / "ok.yaml"
    f.write_text(f"opcua:\n  users:\n    - {{name: a, password_hash: '{h}'}}\n" + URL)
    done = _cli("check-config", str(f))
    assert done.returncode == 0, done.stderr
    assert h not in done.stdout and "***" in done.stdout


def test_cli_hash_password_from_stdin() -> None:
    done = _cli("hash-password", stdin="correct horse\n")
    assert done.returncode == 0
    assert verify_password("correct horse", done.stdout.strip())


def test_demo_config_files_identical_and_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    root = Path(__file__).resolve().parents[2]
    assert (root / "bridge/demo.yaml").read_bytes() == (root / "config/demo.yaml").read_bytes()
    monkeypatch.setenv("WINCC_DEMO_PASSWORD", "x")
    from bridge.cli import _demo_config

    assert _demo_config().opcua.anonymous == "read"


@pytest.mark.parametrize("name", ["demo.yaml", "wincc-dp.yaml", "wincc-restservice.yaml", "wincc-unified.yaml"])
def test_example_configs_validate(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WINCC_PASSWORD", "x")
    monkeypatch.setenv("WINCC_DEMO_PASSWORD", "x")
    cfg = load_config(Path(__file__).resolve().parents[2] / "config" / name)
    assert cfg.wincc.dialect in ("dp", "restservice", "unified")
    text = (Path(__file__).resolve().parents[2] / "config" / name).read_text()
    assert "password:" not in text  # secrets come from password_env / password_file / password_hash only


def test_every_error_is_listed_in_file_order() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(
            "wincc:\n  url: http://a:1\n  dialekt: dp\nopcua:\n  endpiont: x\nsync:\n  interval_ms: fast\n"
            "health: {lisen: x}\n"
        )
    lines = [e.one_line for e in err.value.all]
    assert [e.key for e in err.value.all] == ["wincc.dialekt", "opcua.endpiont", "sync.interval_ms", "health.lisen"]
    assert [e.line for e in err.value.all] == [3, 5, 7, 8]
    assert "more error" not in str(err.value) and str(err.value).splitlines() == lines


def test_unknown_key_hint_points_at_the_complete_example() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config("wincc:\n  url: http://a:1\n  dialekt: dp\n")
    assert "did you mean 'dialect'?" in str(err.value) and "config/wincc-dp.yaml" in str(err.value)
    # that example really has every key of every section (so the hint is true)
    root = Path(__file__).resolve().parents[2]
    text = (root / "config" / "wincc-dp.yaml").read_text()
    from bridge.config import BridgeConfig

    # not in a dp config: restservice's acknowledge, unified's ws_url, a source's name (sources: is a comment)
    other_dialects = ("acknowledge", "password_file", "ws_url", "name")
    for section, field in BridgeConfig.model_fields.items():
        assert f"{section}:" in text, section
        sub = getattr(field.annotation, "model_fields", {})
        missing = [k for k in sub if f"{k}:" not in text and k not in other_dialects]
        assert missing == [], f"{section}: {missing} not in config/wincc-dp.yaml"


def test_missing_url_is_an_error_naming_the_key() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config("wincc:\n  dialect: dp\n")
    assert err.value.key == "wincc.url" and "required value is missing" in str(err.value)
    assert "https://" in str(err.value)  # and says what goes there


def test_without_secrets_check_is_a_warning_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_VAR_FOR_TEST", raising=False)
    text = "wincc:\n  url: http://a:1\n  auth: {mode: basic, username: u, password_env: NO_SUCH_VAR_FOR_TEST}\n"
    with pytest.raises(ConfigError, match="NO_SUCH_VAR_FOR_TEST"):
        parse_config(text)  # serving needs it
    cfg = parse_config(text, require_secrets=False)
    (warning,) = cfg.warnings
    assert "NO_SUCH_VAR_FOR_TEST" in str(warning) and warning.key == "wincc.auth" and not warning.refuse_serving
    assert cfg.wincc.auth.password is None


def test_placeholder_hashes_are_flagged_for_run() -> None:
    placeholder = "scrypt$16384$8$1$REPLACEwithREALsalt0000==$REPLACEwithREALhash000000000000000000000000="
    cfg = parse_config(
        f"opcua:\n  users:\n    - {{name: mes, password_hash: '{placeholder}'}}\n"
        f"    - {{name: ok, password_hash: '{hash_password('x')}'}}\n" + URL
    )
    (warning,) = cfg.warnings
    assert warning.refuse_serving and warning.key == "opcua.users[0].password_hash" and warning.line == 3
    assert "'mes'" in str(warning) and "hash-password" in str(warning)


@pytest.mark.parametrize("name", ["wincc-dp.yaml", "wincc-restservice.yaml"])
def test_example_configs_pass_check_config_without_secrets(name: str) -> None:
    """What their headers say: `check-config` validates them as shipped; the missing variable and the
    placeholder hashes are warnings; `run` refuses the placeholders (before it would need the secret)."""
    path = Path(__file__).resolve().parents[2] / "config" / name
    env = {k: v for k, v in os.environ.items() if k != "WINCC_PASSWORD"}
    done = subprocess.run(
        [sys.executable, "-m", "bridge", "check-config", str(path)], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    assert "WARNING" in done.stderr and "WINCC_PASSWORD" in done.stderr and "placeholder" in done.stderr
    assert "wincc:" in done.stdout
    refused = subprocess.run(
        [sys.executable, "-m", "bridge", "run", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "WINCC_PASSWORD": "x"},
    )
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 2, refused.stderr
    for i, line in enumerate(lines):
        assert re.match(rf"config error: line \d+: opcua\.users\[{i}\]\.password_hash: .*placeholder", line), line
    assert "Traceback" not in refused.stderr


def test_cli_lists_every_config_error_one_line_each(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("wincc:\n  dialekt: dp\nopcua:\n  endpiont: x\n")
    done = _cli("check-config", str(f))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 3, done.stderr
    assert all(line.startswith("config error: line ") for line in lines)
    assert "wincc.url" in lines[0] and "wincc.dialekt" in lines[1] and "opcua.endpiont" in lines[2]
