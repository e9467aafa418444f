"""``benchmarks/decode_scaling.py`` runs where only numpy, pyarrow, pandas, torch and av exist.

The lead runs it on a GPU host whose Python has those packages and a checkout of this
repository that is not installed; Ray, MLflow and the rest are missing there. The script is
run here in a fresh interpreter in which every other third-party import fails, the editable
install of the repository is taken off the import path, and the working directory is outside
the repository.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "decode_scaling.py"
ALLOWED = {"numpy", "pyarrow", "pandas", "torch", "av"}

#: Run ``argv[1:]`` as ``python argv[1] ...`` with imports restricted as on the GPU host; print
#: the third-party top-level modules that were loaded, as JSON, on the last line.
RESTRICTED = """
import json, runpy, sys
allowed = set(sys.argv[1].split(","))
script = sys.argv[2]
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__ + repr(f)]
sys.path[:] = [p for p in sys.path if p not in ("", ".")]
for name in [m for m in sys.modules if m.split(".")[0] in ("pipelines", "raysf")]:
    del sys.modules[name]
first_party = {"pipelines", "raysf", "kinetics_sources", "decode_scaling"}


class Block:
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top in sys.stdlib_module_names or top in allowed or top in first_party:
            return None
        if top.startswith("_"):  # private helpers of the standard library and of numpy
            return None
        raise ModuleNotFoundError(f"blocked on the GPU host: {name}", name=name)


sys.meta_path.insert(0, Block())
sys.argv = [script, *sys.argv[3:]]
try:
    runpy.run_path(script, run_name="__main__")
except SystemExit as e:
    if e.code not in (0, None):
        raise
loaded = sorted({m.split(".")[0] for m in sys.modules} - set(sys.stdlib_module_names))
print(json.dumps([m for m in loaded if not m.startswith("_") and m != "cython_runtime"]))
"""


def run_restricted(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", RESTRICTED, ",".join(sorted(ALLOWED)), str(SCRIPT), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_decode_scaling_imports_only_what_the_gpu_host_has(tmp_path):
    done = run_restricted("--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert "--processes" in done.stdout
    assert {"av", "numpy", "pipelines", "raysf"} <= loaded, loaded
    assert loaded - ALLOWED - {"pipelines", "raysf", "kinetics_sources"} == set(), loaded
    assert "ray" not in loaded and "mlflow" not in loaded and "torch" not in loaded


def test_the_restriction_blocks_ray(tmp_path):
    """The check could fail: a script importing ray dies under the same restriction."""
    probe = tmp_path / "probe.py"
    probe.write_text("import ray\n")
    done = subprocess.run(
        [sys.executable, "-c", RESTRICTED, ",".join(sorted(ALLOWED)), str(probe)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "blocked on the GPU host: ray" in done.stderr
