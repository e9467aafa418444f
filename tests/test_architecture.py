"""The layout rules of docs/architecture.md that import-linter does not check.

- no function over 50 lines and no file over 380 lines (tests and benchmarks aside), and no
  folder of library code directly holding more than 12 modules;
- every package's docstring names each of its modules and sub-packages, and the layer order it
  claims ("Layers, top to bottom (checked by make lint): ...") is an import-linter contract;
- every entry point in ``jobs`` is in the "Entry points never import each other" contract;
- storage endpoints are resolved once: ``endpoint_url`` in at most the config layer and the one
  module that builds a filesystem;
- no first-party import inside a function (a deferred import that only hides a cycle is a
  cycle: import-linter sees through it, this keeps them out altogether);
- an import inside a function is of a heavy optional package and says why in a comment on its
  line or the line above.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("jobs", "infra", "training", "pipelines", "slowfast_model", "raysf")
#: Packages that may be imported inside a function (heavy, or only needed on one code path).
HEAVY = (
    "ray",
    "mlflow",
    "matplotlib",
    "av",
    "torchvision",
    "pytorchvideo",
    "onnx",
    "onnxruntime",
    "onnxscript",
    # Ray Serve's HTTP framework: only the service (training.serving.app) imports it
    "fastapi",
)
MAX_FUNCTION_LINES = 50
MAX_FILE_LINES = 380
MAX_MODULES_PER_FOLDER = 12
LAYERS_CLAIM = re.compile(r"^Layers, top to bottom \(checked by make lint\): (.+)$", re.M)
#: The library files that may name an S3 endpoint: the one module that resolves a storage
#: location (URI + filesystem) and owns ``S3Config`` (ingest's ``storage`` section), the training
#: job's typed config (its ``data.endpoint_url`` and ``storage.endpoint_url`` keys), and the local
#: moto harness (boto3's own ``endpoint_url`` argument).
ENDPOINT_URL_HOMES = {"raysf/storage.py", "training/config.py", "infra/local/s3.py"}


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def _functions(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def _imports_in_functions(tree: ast.AST):
    for fn in _functions(tree):
        for node in ast.walk(fn):
            if isinstance(node, ast.Import):
                yield node, [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                yield node, [node.module or ""]


def test_the_rules_see_every_package():
    assert {p.relative_to(ROOT).parts[0] for p in _modules()} == set(PACKAGES)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_sizes(path: Path):
    source = path.read_text()
    tree = ast.parse(source)
    lines = source.count("\n")
    assert lines <= MAX_FILE_LINES, f"{path.name}: {lines} lines"
    for fn in _functions(tree):
        length = fn.end_lineno - fn.lineno + 1
        assert length <= MAX_FUNCTION_LINES, f"{path.name}:{fn.lineno} {fn.name} has {length} lines"


def _packages() -> list[Path]:
    return sorted(p.parent for pkg in PACKAGES for p in (ROOT / pkg).rglob("__init__.py"))


def _children(package: Path) -> list[str]:
    modules = [p.stem for p in package.glob("*.py") if p.name != "__init__.py"]
    return sorted(modules + [p.parent.name for p in package.glob("*/__init__.py")])


def _contracts() -> list[dict]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["tool"]["importlinter"]["contracts"]


@pytest.mark.parametrize("package", _packages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_folder_sizes(package: Path):
    modules = [p for p in package.glob("*.py") if p.name != "__init__.py"]
    assert len(modules) <= MAX_MODULES_PER_FOLDER, f"{package.name}: {len(modules)} modules"


@pytest.mark.parametrize("package", _packages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_package_docstring_names_its_modules(package: Path):
    if package.parts[-2:] == ("infra", "local") or package.relative_to(ROOT).parts[0] == "infra":
        pytest.skip("infra holds deployment definitions, documented in docs/cluster.md")
    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
    missing = [name for name in _children(package) if not re.search(rf"\b{name}\b", doc)]
    assert not missing, f"{package.relative_to(ROOT)}/__init__.py does not name {missing}"


def test_every_claimed_layer_order_is_a_contract():
    checked = {
        c["containers"][0]: " > ".join(c["layers"])
        for c in _contracts()
        if c["type"] == "layers" and len(c.get("containers", [])) == 1
    }
    claimed = {}
    for package in _packages():
        doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
        for claim in LAYERS_CLAIM.findall(doc):
            claimed[".".join(package.relative_to(ROOT).parts)] = claim.strip()
    assert claimed == checked


def test_every_entry_point_is_in_the_independence_contract():
    (contract,) = [c for c in _contracts() if c["name"] == "Entry points never import each other"]
    entry_points = {f"jobs.{p.stem}" for p in (ROOT / "jobs").glob("*.py")} - {
        "jobs.__init__",
        "jobs.cli",
    }
    assert set(contract["modules"]) == entry_points


def test_endpoint_url_stays_in_the_config_layer():
    files = {str(p.relative_to(ROOT)) for p in _modules() if "endpoint_url" in p.read_text()}
    assert files <= ENDPOINT_URL_HOMES, sorted(files - ENDPOINT_URL_HOMES)


def _said(lines: list[str], index: int) -> bool:
    """A comment on the import's line, on a line of the imports above it, or just above them."""
    while index >= 0 and lines[index].strip().startswith(("import ", "from ")):
        if "#" in lines[index]:
            return True
        index -= 1
    return index >= 0 and lines[index].strip().startswith("#")


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_deferred_imports(path: Path):
    source = path.read_text()
    lines = source.splitlines()
    problems = []
    for node, names in _imports_in_functions(ast.parse(source)):
        where = f"{path.relative_to(ROOT)}:{node.lineno}"
        for name in names:
            top = name.split(".")[0]
            if top in PACKAGES:
                problems.append(f"{where}: first-party import {name} inside a function")
            elif top not in HEAVY:
                problems.append(f"{where}: {name} is no heavy optional package; import it on top")
        if not _said(lines, node.lineno - 1):
            problems.append(f"{where}: say why {names[0]} is imported here (a comment)")
    assert not problems, "\n".join(problems)
