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


def test_joining_retries_a_head_that_does_not_answer_then_names_it():
    from raysf.runtime import join_with_retries

    calls, resets, waits = [], [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("Failed to connect to Ray cluster at 127.0.0.2:1")
        return "context"

    got = join_with_retries(flaky, "127.0.0.2:1", lambda: resets.append(1), sleep=waits.append)
    assert got == "context" and len(calls) == 3 and len(resets) == 2
    assert waits == [10.0, 10.0]

    def down():
        raise ConnectionError("Failed to connect to Ray cluster at 127.0.0.2:1")

    with pytest.raises(
        ConnectionError, match=r"cannot join the Ray cluster at 127\.0\.0\.2:1 \(2 tries"
    ):
        join_with_retries(down, "127.0.0.2:1", lambda: None, attempts=2, sleep=waits.append)


def test_other_errors_are_not_retried():
    from raysf.runtime import join_with_retries

    calls = []

    def denied():
        calls.append(1)
        raise PermissionError("token rejected")

    with pytest.raises(PermissionError):
        join_with_retries(denied, "h:1", lambda: None, sleep=lambda s: None)
    assert calls == [1]
