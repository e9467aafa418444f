"""Static checks of the cluster definitions under ``infra/`` (no cloud, cluster or Docker needed).

* ``infra/aws/cluster.yaml`` is validated the way ``ray up`` validates it: against the JSON schema
  shipped inside the installed ``ray`` package, then through Ray's own ``prepare_config`` +
  ``validate_config``.
* Kubernetes manifests (``infra/k8s``, ``infra/mlflow``): the fields KubeRay requires, resource
  requests and limits on every container, custom resources of the node groups, the RayJob
  entrypoint and its overrides (checked against ``jobs.config`` when it imports).
* No literal credential anywhere under ``infra/``; credential env vars come from Secrets.
* Dockerfiles and constraints pin the Ray / torch / MLflow versions the project installs.

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

import jsonschema
import pytest
import ray
import ray.autoscaler
import yaml

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
CLUSTER_YAML = INFRA / "aws" / "cluster.yaml"
DOCKERFILE = INFRA / "docker" / "Dockerfile"
GPU_CONSTRAINTS = INFRA / "docker" / "constraints-gpu.txt"
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


def ray_schema() -> dict[str, Any]:
    """The cluster-launcher schema of the installed ray (never a vendored copy)."""
    path = Path(ray.autoscaler.__file__).parent / "ray-schema.json"
    return json.loads(path.read_text())


def validate_cluster_config(config: dict[str, Any]) -> dict[str, Any]:
    """Validate like ``ray up``: raw schema check, then Ray's fill-defaults + validate.

    Returns the prepared (defaults-filled) config; raises ``jsonschema.ValidationError``.
    """
    from ray.autoscaler._private.util import prepare_config, validate_config

    jsonschema.validate(config, ray_schema())
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


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


def env_credential_problems(doc: Any, where: str = "") -> list[str]:
    """Credential-looking env vars must come from ``valueFrom.secretKeyRef``, not ``value``."""
    problems = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key == "env" and isinstance(value, list):
                for var in value:
                    name = str(var.get("name", ""))
                    if name in SAFE_ENV or not CREDENTIAL_ENV.search(name):
                        continue
                    if "value" in var or "secretKeyRef" not in (var.get("valueFrom") or {}):
                        problems.append(f"{where}.env {name}: must use valueFrom.secretKeyRef")
            else:
                problems.extend(env_credential_problems(value, f"{where}.{key}"))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            problems.extend(env_credential_problems(value, f"{where}[{i}]"))
    return problems


SECRET_PATTERNS = {
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "AWS secret access key": re.compile(
        r"aws_secret_access_key[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9/+]{30,}", re.I
    ),
    "literal password": re.compile(
        r"password[\"']?\s*[:=]\s*[\"']?(?![$<{(\s\"'])[^\s\"'#]{3,}", re.I
    ),
    "password in a URI": re.compile(r"://[^/\s:@]+:(?![$<{(])[^@\s/]+@"),
    "private key": re.compile(r"-----BEGIN (?:RSA |EC |OPENSSH )?PRIVATE KEY-----"),
}


def secret_findings(text: str, where: str) -> list[str]:
    """Literal credentials in a file's text (names of the pattern and line number)."""
    found = []
    for lineno, line in enumerate(text.splitlines(), 1):
        for label, pattern in SECRET_PATTERNS.items():
            if pattern.search(line):
                found.append(f"{where}:{lineno}: {label}")
    return found


def infra_text_files() -> list[Path]:
    skip = {".pyc", ".png", ".jpg", ".gz", ".zip"}
    return sorted(
        p
        for p in INFRA.rglob("*")
        if p.is_file() and p.suffix not in skip and "__pycache__" not in p.parts
    )


def override_key_problems(entrypoint: str) -> list[str]:
    """Dotted ``key=value`` overrides after the config path must name fields of TrainJobConfig."""
    from jobs.config import TrainJobConfig as root

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


# --------------------------------------------------------------------------- AWS launcher


@pytest.fixture(scope="module")
def cluster_config() -> dict[str, Any]:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def test_cluster_yaml_validates_against_ray_schema(cluster_config):
    prepared = validate_cluster_config(cluster_config)
    assert prepared["provider"]["type"] == "aws"


def test_cluster_yaml_node_types(cluster_config):
    types = cluster_config["available_node_types"]
    head = types[cluster_config["head_node_type"]]
    assert head["resources"] == {"CPU": 0}, "the head must not schedule tasks"
    gpu = [t for t in types.values() if "train_node" in t["resources"]]
    decode = [t for t in types.values() if "decode_node" in t["resources"]]
    assert len(gpu) == 1 and len(decode) == 1
    assert gpu[0]["resources"].get("GPU", 0) >= 1
    assert decode[0]["resources"].get("GPU", 0) == 0 and decode[0]["resources"]["CPU"] > 0
    total_max = 0
    for t in (gpu[0], decode[0]):
        assert 0 <= t["min_workers"] <= t["max_workers"]
        total_max += t["max_workers"]
    assert total_max <= cluster_config["max_workers"]


def test_cluster_yaml_installs_project_and_has_no_keys(cluster_config):
    for name, t in cluster_config["available_node_types"].items():
        assert "IamInstanceProfile" in t["node_config"], f"{name}: S3 access needs an IAM profile"
    assert "-c constraints.txt -e ." in " ".join(cluster_config["setup_commands"])
    gpu = next(
        t for t in cluster_config["available_node_types"].values() if "train_node" in t["resources"]
    )
    assert "-c infra/docker/constraints-gpu.txt -e ." in " ".join(gpu["worker_setup_commands"])
    assert gpu["docker"]["worker_image"].startswith(f"rayproject/ray:{ray.__version__}-")
    assert cluster_config["docker"]["image"].startswith(f"rayproject/ray:{ray.__version__}-")
    run_options = " ".join(cluster_config["docker"]["run_options"])
    assert "MLFLOW_TRACKING_URI=" in run_options
    assert "AWS_SECRET_ACCESS_KEY" not in CLUSTER_YAML.read_text().upper()


def _break_unknown_key(c):
    c["not_a_ray_field"] = 1


def _break_negative_resource(c):
    c["available_node_types"]["decode"]["resources"]["CPU"] = -4


def _break_string_resource(c):
    c["available_node_types"]["gpu"]["resources"]["GPU"] = "eight"


def _break_missing_provider(c):
    del c["provider"]


def _break_missing_node_config(c):
    del c["available_node_types"]["gpu"]["node_config"]


@pytest.mark.parametrize(
    "breaker",
    [
        _break_unknown_key,
        _break_negative_resource,
        _break_string_resource,
        _break_missing_provider,
        _break_missing_node_config,
    ],
)
def test_schema_rejects_broken_cluster_config(cluster_config, breaker):
    broken = copy.deepcopy(cluster_config)
    breaker(broken)
    with pytest.raises(jsonschema.ValidationError):
        validate_cluster_config(broken)


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
    pin = re.search(r'"mlflow==([\d.]+)"', MLFLOW_DOCKERFILE.read_text()).group(1)
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


# --------------------------------------------------------------------------- secrets


def test_no_literal_secrets_under_infra():
    files = infra_text_files()
    assert CLUSTER_YAML in files and DOCKERFILE in files
    findings = []
    for path in files:
        findings += secret_findings(path.read_text(errors="replace"), str(path.relative_to(REPO)))
    assert findings == []


@pytest.mark.parametrize(
    "text",
    [
        "aws_access_key_id = AKIAABCDEFGHIJKLMNOP",
        "aws_secret_access_key: wJalrXUtnFEMIK7MDENGbPxRfiCYzzzzzzzzzzzz",
        "AWS_SECRET_ACCESS_KEY=abcdEFGHijklMNOPqrstUVWXyz0123456789ABCD",
        "  password: hunter22",
        "uri: postgresql://mlflow:s3cr3t@db:5432/mlflow",
    ],
)
def test_secret_scanner_catches_literals(text):
    assert secret_findings(text, "neg")


@pytest.mark.parametrize(
    "text",
    [
        "secretKeyRef: {name: mlflow-db, key: postgres-password}",
        "--backend-store-uri=$(MLFLOW_BACKEND_STORE_URI)",
        "- name: AWS_SECRET_ACCESS_KEY",
    ],
)
def test_secret_scanner_allows_references(text):
    assert secret_findings(text, "pos") == []


def test_env_checker_catches_literal_password():
    doc = {"env": [{"name": "POSTGRES_PASSWORD", "value": "x"}, {"name": "LOG", "value": "1"}]}
    assert env_credential_problems(doc) == [
        ".env POSTGRES_PASSWORD: must use valueFrom.secretKeyRef"
    ]


# --------------------------------------------------------------------------- images


def test_dockerfile_pins_ray_and_uses_gpu_constraints():
    text = DOCKERFILE.read_text()
    froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert len(froms) == 1
    m = re.fullmatch(r"rayproject/ray:(?P<ver>\d+\.\d+\.\d+)-py3\d+-(?:gpu|cu\d+)", froms[0])
    assert m, f"FROM {froms[0]} is not a pinned rayproject/ray GPU tag"
    assert m["ver"] == ray.__version__
    assert re.search(r"pip install [^\n]*-c infra/docker/constraints-gpu\.txt", text)
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    ignore = (INFRA / "docker" / "Dockerfile.dockerignore").read_text().splitlines()
    assert ignore[[ln.strip() for ln in ignore].index("*")] == "*", "context must start empty"


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line.strip())
        if m:
            pins[m[1].lower()] = m[2]
    return pins


def test_gpu_constraints_match_project_pins():
    base, gpu = _pins(REPO / "constraints.txt"), _pins(GPU_CONSTRAINTS)
    assert "-c ../../constraints.txt" in GPU_CONSTRAINTS.read_text()
    assert (GPU_CONSTRAINTS.parent / "../../constraints.txt").resolve() == (
        REPO / "constraints.txt"
    )
    public, _, local = gpu["torch"].partition("+")
    assert public == base["torch"].partition("+")[0] and local.startswith("cu")
    assert gpu["ray"] == ray.__version__
