"""An unreachable MLflow server or S3 endpoint fails the training job early, naming it.

No cluster is needed: both checks happen on the driver before Ray is started.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from infra.local.procs import free_port
from training.config import load_train_config
from training.run.trainer import run_training
from training.tracking import TrackingUnavailableError

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "jobs" / "train.yaml"

pytestmark = pytest.mark.slow

TINY = [
    "model.preset=slowfast_tiny",
    "data.clip.crop_size=32",
    "data.clip.short_side_range=[32, 40]",
    "data.clip.test_short_side=32",
]


def test_unreachable_mlflow_is_named_before_training(tmp_path) -> None:
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    job = load_train_config(
        DEFAULT_CONFIG, [*TINY, f"mlflow.tracking_uri={uri}", f"data.dataset={tmp_path}"]
    )
    started = time.monotonic()
    with pytest.raises(TrackingUnavailableError, match="unreachable") as err:
        run_training(job)
    elapsed = time.monotonic() - started
    assert uri in str(err.value)
    assert elapsed < 15, f"took {elapsed:.1f}s to report the unreachable MLflow server"


def test_unreachable_s3_endpoint_is_named(monkeypatch) -> None:
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    job = load_train_config(
        DEFAULT_CONFIG,
        [
            *TINY,
            "mlflow.enabled=false",
            "data.dataset=s3://raysf-test/datasets/none",
            f"data.endpoint_url={endpoint}",
        ],
    )
    started = time.monotonic()
    with pytest.raises(OSError) as err:
        run_training(job)
    elapsed = time.monotonic() - started
    message = str(err.value)
    print(f"unreachable S3 after {elapsed:.1f}s: {message}")
    assert "127.0.0.1" in message and str(port) in message, message
    assert "datasets/none" in message, message
    # checked with one TCP connect before pyarrow's retries (tens of seconds) get a chance
    assert elapsed < 15, f"took {elapsed:.1f}s to report the unreachable S3 endpoint"
