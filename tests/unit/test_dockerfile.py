"""The Dockerfile says what the README promises (no Docker engine here, so it is read, not built): slim Python
base, non-root user, ports, health check on /healthz, config and PKI as volumes, the entrypoint and command; every
file it copies exists and reaches the build context; `pip install` gets what the build needs; and the config's
default paths for the PKI and the browse snapshot land in volumes, so a recreated container keeps them."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
from pathlib import Path, PurePosixPath

import pytest

from bridge.config import HealthConfig, OpcUaConfig, WinCCConfig

ROOT = Path(__file__).resolve().parents[2]


def instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction: continuation lines joined, comment lines dropped (also inside a
    continued instruction, as Docker does)."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).strip().partition(" ")
        out.append((keyword.upper(), args.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued instruction"
    return out


@pytest.fixture(scope="module")
def steps() -> list[tuple[str, str]]:
    return instructions((ROOT / "Dockerfile").read_text(encoding="utf-8"))


def last(steps: list[tuple[str, str]], keyword: str) -> str:
    found = [args for k, args in steps if k == keyword]
    assert found, f"no {keyword} in the Dockerfile"
    return found[-1]


def exec_form(args: str) -> list[str]:
    value = json.loads(args)  # the JSON (exec) form: no shell between Docker and the process, signals reach it
    assert isinstance(value, list) and all(isinstance(v, str) for v in value)
    return value


def run_commands(steps: list[tuple[str, str]]) -> list[list[str]]:
    """Every simple command of every RUN (split at &&), as words."""
    return [shlex.split(part) for k, args in steps if k == "RUN" for part in args.split("&&") if part.strip()]


def test_slim_python_base(steps) -> None:
    base = last(steps, "FROM")
    assert re.fullmatch(r"python:3\.1[1-9]-slim(-\w+)?", base), base


def test_runs_as_the_non_root_user_it_creates(steps) -> None:
    user, _, group = last(steps, "USER").partition(":")
    assert user not in ("root", "0") and group not in ("root", "0")
    commands = run_commands(steps)
    useradd = next(c for c in commands if c[0] == "useradd")
    assert user in (useradd[-1], useradd[useradd.index("--uid") + 1])  # the user made here, by name or uid
    if group:
        groupadd = next(c for c in commands if c[0] == "groupadd")
        assert group in (groupadd[-1], groupadd[groupadd.index("--gid") + 1])
    keywords = [k for k, _ in steps]
    assert keywords.index("USER") < keywords.index("ENTRYPOINT")


def test_exposes_opc_ua_and_health_ports(steps) -> None:
    ports = {p for k, args in steps if k == "EXPOSE" for p in args.split()}
    assert ports == {"4840", "8081"}
    assert OpcUaConfig().endpoint.endswith(":4840/wincc")


def test_healthcheck_hits_healthz_on_the_default_health_listen(steps) -> None:
    args = last(steps, "HEALTHCHECK")
    options, _, command = args.partition("CMD ")
    assert "--interval=" in options and command
    text = " ".join(exec_form(command)) if command.lstrip().startswith("[") else command
    assert f"http://{HealthConfig().listen}/healthz" in text


def test_config_and_pki_volumes_entrypoint_and_command(steps) -> None:
    volumes = {v for k, args in steps if k == "VOLUME" for v in exec_form(args)}
    assert {"/config", "/pki"} <= volumes
    assert exec_form(last(steps, "ENTRYPOINT")) == ["wincc-opcua-bridge"]
    assert exec_form(last(steps, "CMD")) == ["run", "--config", "/config/bridge.yaml"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert "wincc-opcua-bridge" in scripts  # the entrypoint is what `pip install` puts on PATH


def _ignored(path: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path, p.removeprefix("**/")) for p in patterns)


def test_every_copy_source_exists_and_is_in_the_build_context(steps) -> None:
    patterns = [
        p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines() if p.strip() and not p.startswith("#")
    ]
    copies = [shlex.split(args) for k, args in steps if k in ("COPY", "ADD")]
    assert copies
    for words in copies:
        assert not any(w.startswith("--from") for w in words)
        for source in words[:-1]:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            assert not _ignored(source, patterns), f"COPY {source}: excluded by .dockerignore"


def test_pip_install_gets_what_the_build_needs(steps) -> None:
    """pip builds from the copied tree: pyproject.toml, its readme and the package must all be in it."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    placed: set[PurePosixPath] = set()
    for words in (shlex.split(args) for k, args in steps if k == "COPY"):
        *sources, dest = words
        for source in sources:
            placed.add(PurePosixPath(dest) / source if dest.endswith("/") else PurePosixPath(dest))
    install = next(c for c in run_commands(steps) if c[:2] == ["pip", "install"])
    tree = PurePosixPath(install[-1])
    for name in ("pyproject.toml", project["project"]["readme"], "bridge"):
        assert tree / name in placed, f"pip install {tree}: {name} is not copied there"
    for data in project["tool"]["setuptools"]["package-data"]["bridge"]:
        assert (ROOT / "bridge" / data).is_file()


def _resolve(path: PurePosixPath, links: dict[PurePosixPath, PurePosixPath]) -> PurePosixPath:
    for _ in range(10):
        for link, target in links.items():
            if path == link or link in path.parents:
                path = target / path.relative_to(link)
                break
        else:
            return path
    raise AssertionError(f"symlink loop at {path}")


@pytest.mark.parametrize(
    "default", [OpcUaConfig().pki_dir, WinCCConfig.model_fields["browse_snapshot"].default], ids=["pki", "snapshot"]
)
def test_default_paths_land_in_writable_volumes(steps, default: Path | None) -> None:
    assert default is not None and not default.is_absolute()
    workdir = PurePosixPath(last(steps, "WORKDIR"))
    commands = run_commands(steps)
    links = {PurePosixPath(c[-1]): PurePosixPath(c[-2]) for c in commands if c[:2] == ["ln", "-s"]}
    where = _resolve(workdir / PurePosixPath(default.as_posix()), links)
    volumes = [PurePosixPath(v) for k, args in steps if k == "VOLUME" for v in exec_form(args)]
    volume = next((v for v in volumes if v == where or v in where.parents), None)
    assert volume is not None, f"{default} resolves to {where}, in no volume: lost when the container is recreated"
    owned = {PurePosixPath(p) for c in commands if c[0] == "chown" for p in c[2:]}
    assert volume in owned, f"{volume} is not given to the bridge user: it could not write there"
