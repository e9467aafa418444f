"""moto's standalone S3 server on 127.0.0.1 and bucket creation.

The server keeps everything in memory: a fresh one starts empty. Any S3 client reaches it
with the fake credentials of :data:`S3_CREDENTIALS` and ``endpoint_url`` set to
``S3Server.endpoint`` (boto3, pyarrow's ``S3FileSystem(endpoint_override=..., scheme="http")``,
mlflow through ``MLFLOW_S3_ENDPOINT_URL``).

The keys never sit in an environment: ``S3Server.env`` names a credentials file of mode 0600
(``AWS_SHARED_CREDENTIALS_FILE``, written next to the server's log), which the AWS SDKs of
boto3, pyarrow and MLflow read, as a real cluster's nodes read theirs from a mounted Secret.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import boto3
from botocore.config import Config

from infra.local.credentials import private_dir, write_aws_credentials
from infra.local.procs import (
    LOOPBACK,
    ServiceProcess,
    find_executable,
    free_port,
    start_service,
)

S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


CREDENTIALS_FILE = "aws-credentials"


def s3_env(endpoint: str, credentials_file: str | os.PathLike[str]) -> dict[str, str]:
    """Environment that points AWS SDKs, pyarrow and mlflow at ``endpoint``, with the keys in
    ``credentials_file`` (see :func:`infra.local.credentials.write_aws_credentials`)."""
    return {
        "AWS_DEFAULT_REGION": S3_CREDENTIALS["AWS_DEFAULT_REGION"],
        "AWS_REGION": S3_CREDENTIALS["AWS_DEFAULT_REGION"],
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ENDPOINT_URL_S3": endpoint,
        "MLFLOW_S3_ENDPOINT_URL": endpoint,
        # Never read a developer's real ~/.aws profile by accident.
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": str(credentials_file),
        # No instance metadata service here: without it the SDKs stop looking at once.
        "AWS_EC2_METADATA_DISABLED": "true",
    }


@dataclass
class S3Server:
    """A running moto server.

    Attributes:
        endpoint: ``http://127.0.0.1:<port>``.
        env: :func:`s3_env` for this endpoint and the server's credentials file.
        process: the server process (leader of its own process group).
    """

    endpoint: str
    env: dict[str, str]
    process: ServiceProcess

    def stop(self) -> None:
        self.process.stop(timeout=5.0)


def _moto_executable() -> str:
    return find_executable("moto_server", "moto_server not found: install moto[server]")


def start_moto_server(
    state_dir: str | os.PathLike[str], port: int | None = None, timeout: float = 30.0
) -> S3Server:
    """Start ``moto_server`` on 127.0.0.1 (log ``<state_dir>/moto.log``) and wait for it."""
    port = port or free_port()
    state = private_dir(state_dir)
    credentials = write_aws_credentials(
        state / CREDENTIALS_FILE,
        S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    argv = [_moto_executable(), "-H", LOOPBACK, "-p", str(port)]
    endpoint = f"http://{LOOPBACK}:{port}"
    process = start_service(
        "moto_server", argv, state / "moto.log", f"{endpoint}/moto-api/", timeout
    )
    return S3Server(endpoint=endpoint, env=s3_env(endpoint, credentials), process=process)


def s3_client(endpoint: str, **config: object):  # -> botocore S3 client
    """A boto3 S3 client for ``endpoint`` with the fake credentials (extra ``Config`` kwargs)."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=S3_CREDENTIALS["AWS_DEFAULT_REGION"],
        config=Config(**config) if config else None,
    )


def make_bucket(endpoint: str, name: str) -> None:
    """Create bucket ``name`` on ``endpoint``; an existing bucket of ours is fine."""
    client = s3_client(endpoint)
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=name)
