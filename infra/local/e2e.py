"""End-to-end run on the local multi-node cluster: ingest -> train -> tune, all through S3.

    python -m infra.local.e2e [--state-dir .local-cluster/e2e] [--workers 2] [--keep-up]

1. Starts moto S3, an MLflow server (artifacts in ``s3://<bucket>/mlflow``) and a Ray head with
   ``--workers`` worker nodes (``decode-1``, ``train-1``, ...), unless the state dir already
   holds a running set (then it is reused and left running).
2. Generates a small SynthMotion set and uploads it to ``s3://<bucket>/raw/synthmotion/``.
3. Submits the ingest as a Ray job: ``s3://.../raw/synthmotion`` -> ``s3://.../datasets/synthmotion``.
4. Submits training as a Ray job with the smoke-test sizes: decode tasks pinned to decode nodes
   (``data.decode.resources``), the worker to a train node (``scaling.resources_per_worker``),
   checkpoints in ``s3://<bucket>/checkpoints``, metrics and artifacts in the MLflow server.
5. If ``jobs/tune.py`` exists, submits ``python -m jobs.tune --smoke-test`` (two trials) the
   same way, with the sweep's results in ``s3://<bucket>/tune``.
6. Checks that the manifest, a checkpoint and the MLflow artifacts are in S3 and prints a JSON
   summary (objects per prefix, MLflow run id, seconds per step).

Every job's driver runs on the head node (from the repository, which every node of this
one-machine cluster sees, as nodes of a real cluster see the code baked into the image); its
tasks and actors run on whichever nodes fit their resources.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shlex
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from infra.local import services
from infra.local.ray_auth import auth_headers
from infra.local.ray_jobs import TERMINAL_JOB_STATES
from infra.local.s3 import s3_client
from pipelines.synth.generate import generate

REPO = Path(__file__).resolve().parents[2]
DEFAULT_STATE_DIR = ".local-cluster/e2e"  # ignored by git, apart from up.sh's state
# Tiny sizes, as training.recipes.smoke uses them (slowfast_tiny: T=4, alpha=2, tau=4, 32 px crops).
SYNTH = {"classes": 3, "videos_per_class": 6, "frames": 40, "seed": 0}
INGEST_SAMPLING = [
    "shard_size=8",
    "clip.slow_frames=4",
    "clip.tau=4",
    "clip.alpha=2",
    "clip.target_fps=null",
    "clip.num_test_clips=2",
]
DECODE_RESOURCES = "data.decode.resources={decode_node: 1}"
TRAIN_RESOURCES = "scaling.resources_per_worker={CPU: 1, train_node: 1}"


def log(message: str) -> None:
    print(f"[e2e {time.strftime('%H:%M:%S')}] {message}", flush=True)


def job_entrypoint(argv: Sequence[str], repo: Path = REPO) -> str:
    """Shell command that runs ``argv`` from the repository on the head node.

    The code is already on every node (one machine), as in the Docker image, so jobs are not
    given a ``working_dir``: every raylet of a one-machine cluster shares the head's session
    dir, and a worker node's runtime-env agent deletes a ``working_dir`` package it no longer
    uses, from under the driver still running in it. ``RAY_OVERRIDE_JOB_RUNTIME_ENV=1`` lets
    a driver's own ``ray.init(runtime_env=...)`` (``jobs.train`` sets ``PYTHONPATH``) merge
    with the job's instead of failing on the shared key.
    """
    return f"cd {shlex.quote(str(repo))} && RAY_OVERRIDE_JOB_RUNTIME_ENV=1 " + shlex.join(argv)


def submit(
    dashboard_url: str,
    token: str,
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    repo: Path = REPO,
) -> tuple[Any, str]:
    """Submit ``argv`` as a Ray job (driver on the head); return (client, submission id).

    Tasks and actors get ``PYTHONPATH=<repo>`` (plus ``env``) through the job's runtime env.
    """
    from ray.job_submission import JobSubmissionClient  # heavy; only the submit step needs it

    client = JobSubmissionClient(dashboard_url, headers=auth_headers(token))
    env_vars = {"PYTHONPATH": str(repo), **(env or {})}
    job_id = client.submit_job(
        entrypoint=job_entrypoint(argv, repo), runtime_env={"env_vars": env_vars}
    )
    log(f"submitted {job_id}: {shlex.join(argv)}")
    return client, job_id


def wait_job(client: Any, job_id: str, timeout: float) -> tuple[str, str]:
    """Wait for a terminal state (stopping the job on time-out); return (status, logs)."""
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        status = str(client.get_job_status(job_id).value)
        if status in TERMINAL_JOB_STATES:
            break
        time.sleep(1.0)
    logs = client.get_job_logs(job_id)
    if status not in TERMINAL_JOB_STATES:
        client.stop_job(job_id)
        status = f"TIMEOUT after {timeout:.0f}s"
    return status, logs


def run_job(dashboard_url: str, token: str, argv: Sequence[str], *, timeout: float) -> str:
    """Submit ``argv``, wait, return the logs; ``RuntimeError`` with the log tail unless it succeeded."""
    client, job_id = submit(dashboard_url, token, argv)
    status, logs = wait_job(client, job_id, timeout)
    if status != "SUCCEEDED":
        raise RuntimeError(f"job {job_id} ({shlex.join(argv)}) ended {status}:\n{logs[-6000:]}")
    return logs


def upload_tree(endpoint: str, local_root: Path, bucket: str, prefix: str) -> int:
    """Upload every file under ``local_root`` to ``s3://bucket/prefix/<relative path>``."""
    client = s3_client(endpoint)
    count = 0
    for path in sorted(local_root.rglob("*")):
        if path.is_file():
            key = f"{prefix.rstrip('/')}/{path.relative_to(local_root).as_posix()}"
            client.upload_file(str(path), bucket, key)
            count += 1
    return count


def list_keys(endpoint: str, bucket: str, prefix: str) -> list[str]:
    """Every object key under ``prefix`` (paginated)."""
    client = s3_client(endpoint)
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(obj["Key"] for obj in page.get("Contents", []))
    return keys


def parse_summary(logs: str) -> dict[str, Any]:
    """The JSON summary ``jobs.train`` prints last (the final ``{...}`` block of the logs)."""
    blocks = re.findall(r"^\{\n.*?^\}$", logs, flags=re.S | re.M)
    if not blocks:
        raise ValueError(f"no JSON summary in the job logs:\n{logs[-3000:]}")
    return json.loads(blocks[-1])


def train_command(dataset: str, bucket: str, tracking_uri: str) -> list[str]:
    return _smoke_command(
        "train",
        f"data.dataset={dataset}",
        f"storage.path=s3://{bucket}/checkpoints",
        "storage.name=local-e2e",
        f"mlflow.tracking_uri={tracking_uri}",
        "mlflow.experiment=local-e2e",
        DECODE_RESOURCES,
        TRAIN_RESOURCES,
    )


def tune_command(dataset: str, bucket: str, tracking_uri: str) -> list[str]:
    """A two-trial sweep (one alpha, fusion vs none) with the smoke sizes, placed like training."""
    return _smoke_command(
        "tune",
        f"train.data.dataset={dataset}",
        f"train.mlflow.tracking_uri={tracking_uri}",
        "train.mlflow.experiment=local-e2e-tune",
        # Tune's 0.1-CPU trial drivers land on any node; on these 1-CPU nodes a whole-CPU decode
        # task or train worker would then wait forever for the CPU a driver holds a tenth of.
        f"train.{DECODE_RESOURCES}",
        "train.data.decode.num_cpus=0.5",
        "train.scaling.resources_per_worker={CPU: 0.5, train_node: 1}",
        "space.alpha=[2]",
        "space.fusion=[time_to_channel, none]",
        "space.slow_only=false",
        f"sweep.storage_path=s3://{bucket}/tune",
        "sweep.name=local-e2e",
    )


def _smoke_command(job: str, *overrides: str) -> list[str]:
    """``python -m jobs.<job> --smoke-test jobs/<job>.yaml`` with the config ``overrides``."""
    return ["python", "-m", f"jobs.{job}", "--smoke-test", f"jobs/{job}.yaml", *overrides]


@contextlib.contextmanager
def _timed(seconds: dict[str, float], step: str) -> Iterator[None]:
    """Record the wall time of the ``with`` body as ``seconds[step]``."""
    t0 = time.monotonic()
    yield
    seconds[step] = time.monotonic() - t0


def generate_and_upload(local: Path, endpoint: str, bucket: str, prefix: str) -> int:
    """Generate the small SynthMotion set under ``local``, upload it; return the file count."""
    generate(local, **SYNTH)
    return upload_tree(endpoint, local, bucket, prefix)


def run_ingest(
    dashboard: str, token: str, raw: str, dataset: str, *, timeout: float
) -> dict[str, Any]:
    """Ingest ``raw`` into ``dataset`` as a Ray job; return the counts line it prints."""
    ingest = ["python", "-m", "jobs.ingest", "--videos", raw, "--format", "kinetics"]
    ingest += ["--out", dataset, *INGEST_SAMPLING, "resources.address=auto"]
    ingest_logs = run_job(dashboard, token, ingest, timeout=timeout)
    return json.loads(re.findall(r'^\{"out": .*\}$', ingest_logs, flags=re.M)[-1])


def s3_object_counts(endpoint: str, bucket: str) -> dict[str, int]:
    """Objects under each prefix the pipeline writes to."""
    return {
        prefix: len(list_keys(endpoint, bucket, prefix))
        for prefix in ("raw/", "datasets/", "checkpoints/", "mlflow/", "tune/")
    }


def run_pipeline(state: Mapping[str, Any], work: Path, *, timeout: float) -> dict[str, Any]:
    """Steps 2-6 against running services described by ``state`` (see :func:`services.up`)."""
    env: dict[str, str] = dict(state["env"])
    endpoint, bucket = str(state["s3_endpoint"]), str(state["bucket"])
    dashboard, token = str(state["ray_dashboard_url"]), env["RAY_AUTH_TOKEN"]
    tracking_uri = str(state["mlflow_tracking_uri"])
    raw = f"s3://{bucket}/raw/synthmotion"
    dataset = f"s3://{bucket}/datasets/synthmotion"
    seconds: dict[str, float] = {}

    with _timed(seconds, "generate_upload"):
        uploaded = generate_and_upload(work / "synthmotion", endpoint, bucket, "raw/synthmotion")
    log(f"uploaded {uploaded} files to {raw}")

    with _timed(seconds, "ingest"):
        ingest_counts = run_ingest(dashboard, token, raw, dataset, timeout=timeout)
    log(f"ingest: {ingest_counts}")

    with _timed(seconds, "train"):
        train = train_command(dataset, bucket, tracking_uri)
        train_logs = run_job(dashboard, token, train, timeout=timeout)
    summary = parse_summary(train_logs)
    log(f"train: checkpoint {summary['checkpoint']}, mlflow run {summary['mlflow_run_id']}")

    tuned = (REPO / "jobs" / "tune.py").exists()
    if tuned:
        with _timed(seconds, "tune"):
            tune = tune_command(dataset, bucket, tracking_uri)
            run_job(dashboard, token, tune, timeout=timeout)
    else:
        log("jobs/tune.py does not exist yet: tune step skipped")

    objects = s3_object_counts(endpoint, bucket)
    problems = check_outputs(endpoint, bucket, summary, objects)
    if tuned and not objects["tune/"]:
        problems.append(f"the sweep wrote nothing under s3://{bucket}/tune/")
    if problems:
        raise RuntimeError("end-to-end outputs incomplete: " + "; ".join(problems))
    return {
        "ingest": ingest_counts,
        "checkpoint": summary["checkpoint"],
        "val_top1": summary.get("val_top1"),
        "mlflow_run_id": summary["mlflow_run_id"],
        "tune": "ran" if tuned else "skipped (no jobs/tune.py)",
        "s3_objects": objects,
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
    }


def check_outputs(
    endpoint: str, bucket: str, summary: Mapping[str, Any], objects: Mapping[str, int]
) -> list[str]:
    """What is missing from S3: the manifest, the final checkpoint, the MLflow artifacts."""
    problems = []
    if "datasets/synthmotion/manifest.json" not in list_keys(endpoint, bucket, "datasets/"):
        problems.append(f"s3://{bucket}/datasets/synthmotion/manifest.json missing")
    ckpt = str(summary.get("checkpoint", ""))
    prefix = f"s3://{bucket}/"
    if not ckpt.startswith(prefix + "checkpoints/"):
        problems.append(f"checkpoint {ckpt!r} is not under {prefix}checkpoints/")
    elif not list_keys(endpoint, bucket, ckpt[len(prefix) :].rstrip("/") + "/state.pt"):
        problems.append(f"{ckpt}/state.pt missing")
    if not objects.get("mlflow/"):
        problems.append(f"no MLflow artifacts under {prefix}mlflow/")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--state-dir", type=Path, default=Path(DEFAULT_STATE_DIR))
    parser.add_argument("--workers", type=int, default=2, help="worker nodes (decode, train, ...)")
    parser.add_argument("--keep-up", action="store_true", help="leave the services running")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per job")
    args = parser.parse_args(argv)
    if args.workers < 2:
        parser.error("--workers must be >= 2 (at least one decode and one train node)")
    state_dir = args.state_dir.resolve()
    reuse = bool(services.status(state_dir)) and all(services.status(state_dir).values())
    t0 = time.monotonic()
    if reuse:
        log(f"reusing the services of {state_dir}")
        state = json.loads((state_dir / services.STATE_FILE).read_text())
    else:
        if (state_dir / services.STATE_FILE).exists():
            services.down(state_dir)  # a stale, partly dead set
        log(f"starting S3, MLflow and Ray (head + {args.workers} workers) in {state_dir}")
        state = services.up(state_dir, args.workers)
    startup = time.monotonic() - t0
    try:
        with tempfile.TemporaryDirectory(prefix="raysf-e2e-") as tmp:
            result = run_pipeline(state, Path(tmp), timeout=args.timeout)
        result["seconds"]["startup"] = round(startup, 1)
        print(json.dumps(result, indent=2))
    except Exception as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if not (reuse or args.keep_up):
            log(f"stopping: {', '.join(services.down(state_dir))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
