"""Static checks of the Kubernetes manifests under ``infra/k8s`` and ``infra/mlflow`` (no cluster).

* The fields KubeRay requires, resource requests and limits on every container, custom resources
  of the node groups, the RayJob entrypoint and its overrides (checked against ``training.config``).
* Credential env vars come from Secrets (``valueFrom.secretKeyRef``), never a literal ``value``.
* The MLflow server's image is the version its Dockerfile pins, with the client's major version.

Each checker returns a list of problems, so the negative tests can show that it catches errors.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import shlex
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
import yaml

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
MLFLOW_DOCKERFILE = INFRA / "mlflow" / "Dockerfile"
K8S_FILES = sorted((INFRA / "k8s").glob("*.yaml")) + sorted((INFRA / "mlflow").glob("*.yaml"))
TRAIN_ENTRYPOINT = "python -m jobs.train jobs/train.yaml"

# --------------------------------------------------------------------------- helpers


def load_docs(path: Path) -> list[dict[str, Any]]:
    """All non-empty YAML documents of a manifest file; each must be a mapping."""
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    for i, doc in enumerate(docs):
        if not isinstance(doc, dict):
            raise ValueError(f"{path}: document {i} is a {type(doc).__name__}, not a mapping")
    return docs


def parse_ray_start_resources(value: str) -> dict[str, float]:
    """``rayStartParams.resources`` as the shell sees it in ``ray start --resources=...``.

    KubeRay pastes the value into a shell command line, so it is shell-quoted JSON,
    e.g. ``"{\\"train_node\\": 1000}"``.
    """
    words = shlex.split(value)
    if len(words) != 1:
        raise ValueError(f"rayStartParams.resources must be one shell word, got {value!r}")
    parsed = json.loads(words[0])
    if not isinstance(parsed, dict):
        raise ValueError(f"rayStartParams.resources must be a JSON object, got {value!r}")
    return parsed


def iter_containers(node: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every container of every pod template inside ``node`` (any depth), with its path."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                for i, c in enumerate(value):
                    yield f"{where}.{key}[{i}]", c
            else:
                yield from iter_containers(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from iter_containers(value, f"{where}[{i}]")


def container_resource_problems(where: str, container: dict[str, Any]) -> list[str]:
    """Requests and limits with cpu and memory; a GPU request must also be a limit."""
    problems = []
    resources = container.get("resources") or {}
    for part in ("requests", "limits"):
        block = resources.get(part) or {}
        for name in ("cpu", "memory"):
            if name not in block:
                problems.append(f"{where}: resources.{part}.{name} missing")
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    if "nvidia.com/gpu" in requests and str(requests["nvidia.com/gpu"]) != str(
        limits.get("nvidia.com/gpu")
    ):
        problems.append(f"{where}: nvidia.com/gpu must be in limits, equal to the request")
    return problems


def raycluster_problems(spec: dict[str, Any], where: str) -> list[str]:
    """Fields KubeRay requires in a RayCluster spec, plus this project's node-group contract."""
    problems: list[str] = []
    head = spec.get("headGroupSpec") or {}
    params = head.get("rayStartParams")
    if not isinstance(params, dict):
        problems.append(f"{where}.headGroupSpec.rayStartParams missing")
    elif params.get("num-cpus") != "0":
        problems.append(f"{where}.headGroupSpec.rayStartParams.num-cpus must be '0'")
    if not (head.get("template", {}).get("spec", {}).get("containers")):
        problems.append(f"{where}.headGroupSpec.template.spec.containers missing")
    groups = spec.get("workerGroupSpecs") or []
    if not groups:
        problems.append(f"{where}.workerGroupSpecs is empty")
    custom: dict[str, dict[str, float]] = {}
    for i, group in enumerate(groups):
        gw = f"{where}.workerGroupSpecs[{i}]"
        for key in ("groupName", "replicas", "minReplicas", "maxReplicas", "rayStartParams"):
            if key not in group:
                problems.append(f"{gw}.{key} missing")
        if not group.get("template", {}).get("spec", {}).get("containers"):
            problems.append(f"{gw}.template.spec.containers missing")
        lo, n, hi = (group.get(k) for k in ("minReplicas", "replicas", "maxReplicas"))
        if all(isinstance(v, int) for v in (lo, n, hi)) and not lo <= n <= hi:
            problems.append(f"{gw}: need minReplicas <= replicas <= maxReplicas, got {lo, n, hi}")
        rsp = group.get("rayStartParams") or {}
        bad = [k for k, v in rsp.items() if not isinstance(v, str)]
        if bad:
            problems.append(f"{gw}.rayStartParams values must be strings: {bad}")
        if "resources" in rsp:
            custom[str(group.get("groupName"))] = parse_ray_start_resources(rsp["resources"])
    if spec.get("enableInTreeAutoscaling"):
        res = (spec.get("autoscalerOptions") or {}).get("resources") or {}
        if not (res.get("requests") and res.get("limits")):
            problems.append(f"{where}.autoscalerOptions.resources needs requests and limits")
    # Project contract: a GPU group with train_node, a CPU group with decode_node.
    train = [g for g in groups if "train_node" in custom.get(str(g.get("groupName")), {})]
    decode = [g for g in groups if "decode_node" in custom.get(str(g.get("groupName")), {})]
    if not train:
        problems.append(f"{where}: no worker group with the train_node resource")
    if not decode:
        problems.append(f"{where}: no worker group with the decode_node resource")
    for g in train:
        for cw, c in iter_containers(g.get("template"), f"{where}.{g.get('groupName')}"):
            if "nvidia.com/gpu" not in ((c.get("resources") or {}).get("limits") or {}):
                problems.append(f"{cw}: train group container lacks an nvidia.com/gpu limit")
    for g in decode:
        for cw, c in iter_containers(g.get("template"), f"{where}.{g.get('groupName')}"):
            if "nvidia.com/gpu" in ((c.get("resources") or {}).get("limits") or {}):
                problems.append(f"{cw}: decode group must not hold GPUs")
    return problems


CREDENTIAL_ENV = re.compile(r"KEY|SECRET|PASSWORD|TOKEN|CREDENTIAL|STORE_URI|DATABASE_URL", re.I)
SAFE_ENV = {"AWS_DEFAULT_REGION"}
#: A variable that names where a secret is (a mounted file) holds no secret itself.
PATH_ENV = re.compile(r"_(FILE|PATH)$")


def env_credential_problems(doc: Any, where: str = "") -> list[str]:
    """Credential-looking env vars must come from ``valueFrom.secretKeyRef``, not ``value``
    (``..._FILE`` / ``..._PATH`` variables name a mounted file and may be literal)."""
    problems = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key == "env" and isinstance(value, list):
                for var in value:
                    name = str(var.get("name", ""))
                    if name in SAFE_ENV or PATH_ENV.search(name):
                        continue
                    if not CREDENTIAL_ENV.search(name):
                        continue
                    if "value" in var or "secretKeyRef" not in (var.get("valueFrom") or {}):
                        problems.append(f"{where}.env {name}: must use valueFrom.secretKeyRef")
            else:
                problems.extend(env_credential_problems(value, f"{where}.{key}"))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            problems.extend(env_credential_problems(value, f"{where}[{i}]"))
    return problems


def override_key_problems(entrypoint: str) -> list[str]:
    """Dotted ``key=value`` overrides after the config path must name fields of TrainJobConfig."""
    from training.config import TrainJobConfig as root

    problems = []
    for token in entrypoint.split()[4:]:
        if "=" not in token:
            problems.append(f"override {token!r} is not key=value")
            continue
        cls: Any = root
        for part in token.split("=", 1)[0].split("."):
            if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
                break  # a dict-typed field (e.g. resources_per_worker): free-form keys
            hints = typing.get_type_hints(cls)
            if part not in hints:
                problems.append(f"override {token!r}: {cls.__name__} has no field {part!r}")
                break
            cls = hints[part]
            args = [a for a in typing.get_args(cls) if dataclasses.is_dataclass(a)]
            cls = args[0] if args else cls
    return problems


# --------------------------------------------------------------------------- Kubernetes


def test_manifests_exist():
    names = {p.name for p in K8S_FILES}
    assert {"raycluster.yaml", "rayjob-train.yaml", "serviceaccount.yaml"} <= names
    assert {"mlflow-server.yaml", "postgres.yaml"} <= names


@pytest.mark.parametrize("path", K8S_FILES, ids=lambda p: p.name)
def test_manifest_basics_and_container_resources(path):
    docs = load_docs(path)
    assert docs, f"{path} has no documents"
    problems = []
    for i, doc in enumerate(docs):
        where = f"{path.name}#{i}"
        assert isinstance(doc.get("apiVersion"), str) and isinstance(doc.get("kind"), str), where
        assert doc.get("metadata", {}).get("name"), f"{where}: metadata.name missing"
        for cw, container in iter_containers(doc, where):
            assert container.get("image"), f"{cw}: image missing"
            problems += container_resource_problems(cw, container)
        problems += env_credential_problems(doc, where)
    assert problems == []


def _docs_of_kind(kind: str) -> list[dict[str, Any]]:
    return [d for p in K8S_FILES for d in load_docs(p) if d.get("kind") == kind]


def test_raycluster_fields():
    clusters = _docs_of_kind("RayCluster")
    assert clusters
    for doc in clusters:
        assert doc["apiVersion"] == "ray.io/v1"
        assert doc["spec"]["rayVersion"] == ray.__version__
        assert raycluster_problems(doc["spec"], doc["metadata"]["name"]) == []


def test_rayjob_fields():
    jobs = _docs_of_kind("RayJob")
    assert jobs
    for doc in jobs:
        spec = doc["spec"]
        assert doc["apiVersion"] == "ray.io/v1"
        entry = " ".join(spec["entrypoint"].split())
        assert entry.startswith(TRAIN_ENTRYPOINT)
        assert "storage.path=s3://" in entry and "mlflow.tracking_uri=http" in entry
        assert spec["shutdownAfterJobFinishes"] is True
        assert isinstance(spec["ttlSecondsAfterFinished"], int)
        assert "rayClusterSpec" in spec or "clusterSelector" in spec
        if "rayClusterSpec" in spec:
            assert spec["rayClusterSpec"]["rayVersion"] == ray.__version__
            assert raycluster_problems(spec["rayClusterSpec"], doc["metadata"]["name"]) == []
        assert override_key_problems(entry) == []


def test_pods_use_the_project_service_accounts():
    accounts = {d["metadata"]["name"] for d in _docs_of_kind("ServiceAccount")}
    used = set()
    for kind in ("RayCluster", "RayJob", "Deployment"):
        for doc in _docs_of_kind(kind):
            text = json.dumps(doc)
            used |= set(re.findall(r'"serviceAccountName": "([^"]+)"', text))
    assert used and used <= accounts


def test_mlflow_server_definition():
    (deploy,) = _docs_of_kind("Deployment")
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    args = " ".join(container["args"])
    assert "--serve-artifacts" in args and "--artifacts-destination=s3://" in args
    assert "--backend-store-uri=$(MLFLOW_BACKEND_STORE_URI)" in args
    env = {e["name"]: e for e in container["env"]}
    assert "secretKeyRef" in env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]
    pin = re.search(r'"mlflow(?:\[auth\])?==([\d.]+)"', MLFLOW_DOCKERFILE.read_text()).group(1)
    assert container["image"].endswith(f":{pin}")
    import mlflow

    installed = mlflow.__version__
    assert pin.split(".")[0] == installed.split(".")[0], "server and client MLflow majors differ"


NEG_CONTAINER = {"name": "x", "image": "i", "resources": {"requests": {"cpu": "1"}}}
NEG_GPU = {
    "name": "x",
    "image": "i",
    "resources": {
        "requests": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "1"},
        "limits": {"cpu": "1", "memory": "1Gi"},
    },
}


@pytest.mark.parametrize("container", [NEG_CONTAINER, NEG_GPU], ids=["no-limits", "gpu-not-limit"])
def test_resource_checker_catches_missing_limits(container):
    assert container_resource_problems("c", container)


def test_raycluster_checker_catches_missing_fields():
    (doc,) = load_docs(INFRA / "k8s" / "raycluster.yaml")
    spec = copy.deepcopy(doc["spec"])
    del spec["headGroupSpec"]["rayStartParams"]
    del spec["workerGroupSpecs"][1]["rayStartParams"]
    spec["workerGroupSpecs"][0]["replicas"] = 99
    problems = raycluster_problems(spec, "neg")
    assert any("headGroupSpec.rayStartParams" in p for p in problems)
    assert any("decode_node" in p for p in problems)
    assert any("minReplicas <= replicas" in p for p in problems)


def test_override_checker_catches_unknown_key():
    assert override_key_problems(TRAIN_ENTRYPOINT + " storage.paht=s3://b/c")


def test_env_checker_catches_literal_password():
    doc = {
        "env": [
            {"name": "POSTGRES_PASSWORD", "value": "x"},
            {"name": "LOG", "value": "1"},
            {"name": "AWS_SHARED_CREDENTIALS_FILE", "value": "/etc/raysf/aws/credentials"},
            {"name": "RAY_AUTH_TOKEN", "value": "abc"},
        ]
    }
    assert env_credential_problems(doc) == [
        ".env POSTGRES_PASSWORD: must use valueFrom.secretKeyRef",
        ".env RAY_AUTH_TOKEN: must use valueFrom.secretKeyRef",
    ]
