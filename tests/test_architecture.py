"""The layout rules of docs/architecture.md that import-linter does not check.

- no function over 60 lines and no file over 400 lines (tests and benchmarks aside), unless
  its docstring has a paragraph starting ``Why this is long:``;
- no first-party import inside a function (a deferred import that only hides a cycle is a
  cycle: import-linter sees through it, this keeps them out altogether);
- an import inside a function is of a heavy optional package and says why in a comment on its
  line or the line above.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

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
)
MAX_FUNCTION_LINES = 60
MAX_FILE_LINES = 400
WHY_LONG = "Why this is long:"


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
    doc = ast.get_docstring(tree) or ""
    assert lines <= MAX_FILE_LINES or WHY_LONG in doc, f"{path.name}: {lines} lines"
    for fn in _functions(tree):
        length = fn.end_lineno - fn.lineno + 1
        fn_doc = ast.get_docstring(fn) or ""
        assert length <= MAX_FUNCTION_LINES or WHY_LONG in fn_doc, (
            f"{path.name}:{fn.lineno} {fn.name} has {length} lines"
        )


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
