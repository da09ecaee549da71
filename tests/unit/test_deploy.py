"""deploy/: the Compose files against the Compose specification's JSON schema (the copy check-jsonschema ships),
every Kubernetes manifest against the Kubernetes API schema of the newest release kubernetes-validate knows, the
wiring between them (config, Secret, volumes, probes, image uid), and every bridge config under deploy/ through
`wincc-opcua-bridge check-config`."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILES = sorted(DEPLOY.glob("compose*.yaml"))
MANIFESTS = sorted((DEPLOY / "kubernetes").rglob("*.yaml"))
K8S_VERSION = kubernetes_validate.latest_version()


def _compose_schema() -> dict[str, Any]:
    text = resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text()
    return json.loads(text)


def _compose_errors(doc: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(_compose_schema())
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def _image_uid() -> int:
    match = re.search(r"^USER (\d+):(\d+)$", (ROOT / "Dockerfile").read_text(), re.M)
    assert match, "the Dockerfile names its user numerically"
    return int(match.group(1))


# ---- Compose -------------------------------------------------------------------------------------------------------
def test_there_is_a_compose_file_and_manifests() -> None:
    assert DEPLOY / "compose.yaml" in COMPOSE_FILES and DEPLOY / "compose.redundant.yaml" in COMPOSE_FILES
    kinds = {d["kind"] for m in MANIFESTS for d in _docs(m)}
    assert {"StatefulSet", "Service", "ConfigMap", "Secret"} <= kinds


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_file_matches_the_compose_spec(path: Path) -> None:
    assert _compose_errors(yaml.safe_load(path.read_text(encoding="utf-8"))) == []


def test_the_compose_schema_check_can_fail() -> None:
    doc = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    broken = copy.deepcopy(doc)
    broken["services"]["bridge"]["healthcheck"]["interval"] = ["15s"]
    broken["services"]["bridge"]["volumez"] = []
    errors = _compose_errors(broken)
    assert any("volumez" in e for e in errors) and any("interval" in e for e in errors)


def _bridges(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in doc["services"].items() if s.get("command", [None])[0] != "simulate"}


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_bridges_have_config_pki_and_health_checks(path: Path) -> None:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    bridges = _bridges(doc)
    assert bridges
    for name, service in bridges.items():
        assert "/healthz" in " ".join(service["healthcheck"]["test"]), name
        mounts = {v.split(":")[1]: v.split(":")[0] for v in service["volumes"]}
        config_file = mounts["/config/bridge.yaml"]
        assert config_file.startswith("./config/") and (DEPLOY / config_file).is_file()
        assert mounts["/pki"] in doc["volumes"] and mounts["/nodesets"] in doc["volumes"], name
        config = yaml.safe_load((DEPLOY / config_file).read_text(encoding="utf-8"))
        assert config["opcua"]["pki_dir"] == "/pki" and config["health"]["listen"].endswith(":8081")
        port = re.search(r":(\d+)/", config["opcua"]["endpoint"]).group(1)
        assert f"{port}:{port}" in service["ports"], f"{name}: the advertised port is published as is"
    pki = [next(v for v in s["volumes"] if v.endswith(":/pki")) for s in bridges.values()]
    assert len(pki) == len(set(pki)), "every bridge keeps its own PKI"


def test_compose_shards_split_one_simulator_by_complementary_patterns() -> None:
    doc = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    a = yaml.safe_load((DEPLOY / "config/shard-a.yaml").read_text(encoding="utf-8"))["wincc"]
    b = yaml.safe_load((DEPLOY / "config/shard-b.yaml").read_text(encoding="utf-8"))["wincc"]
    assert a["url"] == b["url"] == "http://simulator:8700"
    assert a["include"] == b["exclude"] and not a.get("exclude") and not b.get("include")
    assert doc["services"]["shard-a"]["profiles"] == doc["services"]["shard-b"]["profiles"] == ["shards"]


# ---- Kubernetes ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_manifest_matches_the_kubernetes_schema(path: Path) -> None:
    for doc in _docs(path):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_kubernetes_schema_check_can_fail() -> None:
    doc = next(d for d in _docs(DEPLOY / "kubernetes/shard-a.yaml") if d["kind"] == "StatefulSet")
    broken = copy.deepcopy(doc)
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["pathh"] = "/healthz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def _all_docs() -> list[dict[str, Any]]:
    return [d for m in MANIFESTS for d in _docs(m)]


def _statefulsets() -> list[dict[str, Any]]:
    return [d for d in _all_docs() if d["kind"] == "StatefulSet"]


@pytest.mark.parametrize("sts", _statefulsets(), ids=lambda d: d["metadata"]["name"])
def test_statefulset_runs_the_bridge_as_the_images_user_with_probes_pki_and_resources(sts: dict[str, Any]) -> None:
    docs = _all_docs()
    pod = sts["spec"]["template"]
    spec = pod["spec"]
    (container,) = spec["containers"]
    uid = _image_uid()
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == uid and spec["securityContext"]["fsGroup"] == uid
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["livenessProbe"]["httpGet"]["port"] == "health" and ports["health"] == 8081
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/port"] == str(ports["health"])
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind])
    # the PKI is a persistent volume claim of the StatefulSet, mounted where the config keeps it
    claims = {c["metadata"]["name"] for c in sts["spec"]["volumeClaimTemplates"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert "pki" in claims and mounts["pki"] == "/pki"
    # config from a ConfigMap key that exists, password from a Secret key that exists
    (config_volume,) = [v for v in spec["volumes"] if "configMap" in v]
    config_map = next(
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == config_volume["configMap"]["name"]
    )
    (item,) = config_volume["configMap"]["items"]
    config = yaml.safe_load(config_map["data"][item["key"]])
    assert mounts[config_volume["name"]] + "/" + item["path"] in container["args"]
    assert config["opcua"]["pki_dir"] == "/pki" and config["health"]["listen"] == f"0.0.0.0:{ports['health']}"
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    ref = env[config["wincc"]["auth"]["password_env"]]
    secret = next(d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == ref["name"])
    assert ref["key"] in secret["stringData"]
    # one Service per StatefulSet, selecting its pods, with the OPC UA and the health port
    service = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == sts["spec"]["serviceName"])
    assert service["spec"]["selector"] == sts["spec"]["selector"]["matchLabels"]
    assert {p["targetPort"] for p in service["spec"]["ports"]} == {"opcua", "health"}
    assert config["opcua"]["public_hostname"] == service["metadata"]["name"]


def test_kubernetes_redundant_pair_names_each_other() -> None:
    config_map = next(d for d in _docs(DEPLOY / "kubernetes/redundant/config.yaml") if d["kind"] == "ConfigMap")
    a, b = (yaml.safe_load(config_map["data"][k])["opcua"] for k in ("redundant-a.yaml", "redundant-b.yaml"))
    assert a["redundancy"]["partners"] == [b["application_uri"]]
    assert b["redundancy"]["partners"] == [a["application_uri"]]
    assert a["redundancy"]["mode"] == b["redundancy"]["mode"] != "none"


# ---- every config under deploy/ passes check-config ------------------------------------------------------------
def _configs() -> list[tuple[str, str]]:
    found = [
        (str(p.relative_to(DEPLOY)), p.read_text(encoding="utf-8")) for p in sorted((DEPLOY / "config").glob("*.yaml"))
    ]
    for doc in _all_docs():
        if doc["kind"] == "ConfigMap":
            found += [(f"{doc['metadata']['name']}/{key}", text) for key, text in sorted(doc["data"].items())]
    return found


@pytest.mark.parametrize(("name", "text"), _configs(), ids=[n for n, _ in _configs()])
def test_config_passes_check_config(name: str, text: str, tmp_path: Path) -> None:
    path = tmp_path / "bridge.yaml"
    path.write_text(text, encoding="utf-8")
    env = {**os.environ, "WINCC_PASSWORD": "deploy-Pw-5e1c"}
    run = subprocess.run(
        [sys.executable, "-m", "bridge", "check-config", str(path)], capture_output=True, text=True, env=env, timeout=60
    )
    assert run.returncode == 0, run.stderr
    effective = yaml.safe_load(run.stdout)
    assert effective["opcua"]["pki_dir"] == "/pki"
