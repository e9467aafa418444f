"""raysf.runtime.init_ray against a real local Ray instance (in a subprocess of its own)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

DRIVER = textwrap.dedent(
    """
    import ray
    from raysf import runtime

    runtime.init_ray(num_cpus=1, dashboard=False)

    @ray.remote
    def probe():
        import carried_probe
        return carried_probe.VALUE

    print("probe:", ray.get(probe.remote()))
    ray.shutdown()
    """
)


@pytest.mark.slow
def test_local_workers_keep_the_drivers_pythonpath(tmp_path):
    """Packages installed with ``pip --target`` and put on PYTHONPATH (a GPU host with carried
    wheels) stay importable in the workers of a local instance, after the project's root."""
    carried = tmp_path / "site"
    carried.mkdir()
    (carried / "carried_probe.py").write_text("VALUE = 'from the carried folder'\n")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = str(carried)
    env["RAY_AUTH_MODE"] = "disabled"
    out = subprocess.run(
        [sys.executable, "-c", DRIVER],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "probe: from the carried folder" in out.stdout
