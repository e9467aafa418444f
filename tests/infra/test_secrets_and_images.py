"""Static checks of secrets and version pins under ``infra/`` (no cloud, cluster or Docker needed).

* No literal credential anywhere under ``infra/`` (the scanner's negative tests show it catches
  access keys, passwords and private keys, and allows references to Secrets).
* Dockerfiles and constraints pin the Ray / torch versions the project installs.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import ray

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
CLUSTER_YAML = INFRA / "aws" / "cluster.yaml"
DOCKERFILE = INFRA / "docker" / "Dockerfile"
GPU_CONSTRAINTS = INFRA / "docker" / "constraints-gpu.txt"

# --------------------------------------------------------------------------- helpers


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


#: In Python source a password is literal only as a quoted string: ``password: str | None``
#: and ``password=password`` are names, not secrets.
PY_LITERAL_PASSWORD = re.compile(
    r"password[\w\"']*\s*[:=]\s*[rbfu]?[\"'](?![$<{(\s])[^\"'\n]{3,}[\"']", re.I
)


def secret_findings(text: str, where: str) -> list[str]:
    """Literal credentials in a file's text (names of the pattern and line number)."""
    patterns = dict(SECRET_PATTERNS)
    if where.endswith(".py"):
        patterns["literal password"] = PY_LITERAL_PASSWORD
    found = []
    for lineno, line in enumerate(text.splitlines(), 1):
        for label, pattern in patterns.items():
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


def test_secret_scanner_in_python_flags_quoted_literals_only():
    assert secret_findings('admin_password = "hunter22"', "x.py")
    assert secret_findings("MLFLOW_AUTH_ADMIN_PASSWORD='s3cr3t-pw'", "x.py")
    assert secret_findings("password: str | None = None", "x.py") == []
    assert secret_findings("password = admin_password or token_urlsafe(24)", "x.py") == []
    assert secret_findings("password: hunter22", "x.yaml")  # YAML: any literal value


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
