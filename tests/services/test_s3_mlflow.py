"""moto S3, the MLflow server with proxied S3 artifacts, and the fault-injecting proxy."""

from __future__ import annotations

import io
import json
import urllib.request

import botocore.exceptions
import pyarrow.fs as pafs
import pytest

from infra.local.faulty_s3_proxy import FaultPlan, FaultyS3Proxy
from infra.local.procs import free_port
from infra.local.s3 import s3_client

pytestmark = pytest.mark.slow

S3_BUCKET = "raysf-test"  # created by the s3_server fixture (tests/conftest.py)


def test_pyarrow_and_boto3_share_the_bucket(s3_server):
    fs = pafs.S3FileSystem(
        endpoint_override=s3_server.endpoint,
        scheme="http",
        access_key="testing",
        secret_key="testing",
        region="us-east-1",
    )
    with fs.open_output_stream(f"{S3_BUCKET}/arrow/a.bin") as out:
        out.write(b"x" * 3000)
    body = s3_client(s3_server.endpoint).get_object(Bucket=S3_BUCKET, Key="arrow/a.bin")
    assert body["Body"].read() == b"x" * 3000


def test_mlflow_logs_params_metrics_and_artifact_to_s3(mlflow_server, s3_server, tmp_path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_server.tracking_uri)
    exp = client.create_experiment("services-test")
    run_id = client.create_run(exp).info.run_id
    client.log_param(run_id, "alpha", "8")
    for step, loss in enumerate([0.9, 0.5]):
        client.log_metric(run_id, "loss", loss, step=step)
    note = tmp_path / "note.txt"
    note.write_text("slowfast")
    client.log_artifact(run_id, str(note), artifact_path="notes")
    client.set_terminated(run_id)

    run = client.get_run(run_id)
    assert run.data.params == {"alpha": "8"}
    assert [m.value for m in client.get_metric_history(run_id, "loss")] == [0.9, 0.5]
    assert [a.path for a in client.list_artifacts(run_id, "notes")] == ["notes/note.txt"]
    keys = [
        o["Key"]
        for o in s3_client(s3_server.endpoint).list_objects_v2(Bucket=S3_BUCKET, Prefix="mlflow/")[
            "Contents"
        ]
    ]
    wanted = f"/{run_id}/artifacts/notes/note.txt"
    matches = [k for k in keys if k.endswith(wanted)]
    assert matches, keys
    obj = s3_client(s3_server.endpoint).get_object(Bucket=S3_BUCKET, Key=matches[0])
    assert obj["Body"].read() == b"slowfast"


def test_boto3_retries_through_faulty_proxy(s3_server):
    with FaultyS3Proxy(s3_server.endpoint, failure_rate=0.3, seed=0) as proxy:
        client = s3_client(proxy.endpoint, retries={"mode": "standard", "max_attempts": 10})
        payloads = {f"faulty/{i}": bytes([i]) * (512 + i) for i in range(20)}
        for key, data in payloads.items():
            client.put_object(Bucket=S3_BUCKET, Key=key, Body=data)
        for key, data in payloads.items():
            assert client.get_object(Bucket=S3_BUCKET, Key=key)["Body"].read() == data
        ranged = client.get_object(Bucket=S3_BUCKET, Key="faulty/7", Range="bytes=2-9")
        assert ranged["Body"].read() == bytes([7]) * 8
        with urllib.request.urlopen(f"{proxy.endpoint}/__faults__") as response:
            stats = json.load(response)
    assert stats["faults"] > 0
    assert stats["forwarded"] >= 41
    assert stats["requests"] == stats["faults"] + stats["forwarded"]
    assert sum(stats["by_kind"].values()) == stats["faults"]


def test_multipart_upload_through_proxy(s3_server):
    from boto3.s3.transfer import TransferConfig

    data = bytes(range(256)) * (24 * 1024)  # 6 MiB -> two parts
    config = TransferConfig(multipart_threshold=5 * 2**20, multipart_chunksize=5 * 2**20)
    with FaultyS3Proxy(s3_server.endpoint, failure_rate=0.2, seed=1) as proxy:
        client = s3_client(proxy.endpoint, retries={"mode": "standard", "max_attempts": 10})
        client.upload_fileobj(io.BytesIO(data), S3_BUCKET, "faulty/big", Config=config)
        assert client.get_object(Bucket=S3_BUCKET, Key="faulty/big")["Body"].read() == data


def test_fault_plan_is_deterministic_by_seed():
    first = [FaultPlan(0.5, seed=3).draw() for _ in range(1)]
    a, b = FaultPlan(0.5, seed=3), FaultPlan(0.5, seed=3)
    assert [a.draw() for _ in range(50)] == [b.draw() for _ in range(50)]
    assert a.stats()["faults"] == b.stats()["faults"] > 0
    assert first[0] == FaultPlan(0.5, seed=3).draw()
    with pytest.raises(ValueError, match="failure_rate"):
        FaultPlan(1.5)


def test_unreachable_endpoint_gives_clear_error():
    closed = f"http://127.0.0.1:{free_port()}"
    client = s3_client(closed, retries={"mode": "standard", "max_attempts": 1})
    with pytest.raises(botocore.exceptions.EndpointConnectionError, match="127.0.0.1"):
        client.list_buckets()
    with (
        FaultyS3Proxy(closed, failure_rate=0.0) as proxy,
        pytest.raises(botocore.exceptions.ClientError, match="502"),
    ):
        s3_client(proxy.endpoint, retries={"max_attempts": 1}).list_buckets()
