"""Deployment files shipped in edgeclf/deploy: the server image and the KServe InferenceService."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[1] / "edgeclf" / "deploy"


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def test_dockerfile_slim_serve_extra_no_torch_non_root_healthcheck():
    instr = dockerfile_instructions()
    kinds = [k for k, _ in instr]
    assert instr[0][0] == "FROM" and instr[0][1].startswith("python:") and instr[0][1].endswith("-slim")
    installs = [a for k, a in instr if k == "RUN" and "pip install" in a]
    assert len(installs) == 1 and '".[serve]"' in installs[0]
    assert "torch" not in installs[0].split("&&")[0] and "train" not in installs[0]
    user = [a for k, a in instr if k == "USER"]
    assert user and user[-1] not in ("root", "0") and kinds.index("USER") > kinds.index("RUN")
    [health] = [a for k, a in instr if k == "HEALTHCHECK"]
    assert "/v2/health/ready" in health and "--interval" in health
    entry = shlex.split([a for k, a in instr if k == "ENTRYPOINT"][0].strip("[]").replace(",", " "))
    cmd = shlex.split([a for k, a in instr if k == "CMD"][-1].strip("[]").replace(",", " "))
    assert entry == ["edgeclf"] and cmd[:2] == ["serve", "/models/edgeclf"] and "0.0.0.0" in cmd
    assert set(kinds) <= {"FROM", "ENV", "WORKDIR", "COPY", "RUN", "ARG", "USER", "EXPOSE", "HEALTHCHECK",
                          "ENTRYPOINT", "CMD"}


def test_inferenceservice_manifest():
    yaml = pytest.importorskip("yaml", reason="PyYAML (a kserve dependency) parses the manifest")
    doc = yaml.safe_load((DEPLOY / "inferenceservice.yaml").read_text())
    assert doc["apiVersion"] == "serving.kserve.io/v1beta1" and doc["kind"] == "InferenceService"
    annotations = doc["metadata"]["annotations"]
    assert annotations["autoscaling.knative.dev/metric"] == "concurrency"
    assert int(annotations["autoscaling.knative.dev/target"]) > 0
    predictor = doc["spec"]["predictor"]
    assert 1 <= predictor["minReplicas"] < predictor["maxReplicas"]
    assert predictor["scaleMetric"] == "concurrency" and predictor["scaleTarget"] > 0
    [container] = predictor["containers"]
    assert container["name"] == "kserve-container"
    assert container["args"][:2] == ["serve", "/models/edgeclf"] and "0.0.0.0" in container["args"]
    assert container["ports"][0]["containerPort"] == 8080
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["securityContext"]["runAsNonRoot"] is True


def test_deploy_files_ship_in_the_package():
    tomllib = pytest.importorskip("tomllib", reason="Python 3.11+")

    pyproject = tomllib.loads((DEPLOY.parents[1] / "pyproject.toml").read_text())
    assert "deploy/*" in pyproject["tool"]["setuptools"]["package-data"]["edgeclf"]
    extras = pyproject["project"]["optional-dependencies"]
    assert any(d.startswith("kserve") for d in extras["serve"])
    assert any(d.startswith("tritonclient[http,grpc]") for d in extras["client"])
    assert not any("torch" in d for d in extras["serve"] + extras["client"])
