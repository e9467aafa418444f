"""Serve a trained network over HTTP: ``raysf serve CHECKPOINT|EXPORT [--port] [--replicas N]``.

A Ray Serve application (:mod:`training.serving`): ``POST /v1/classify`` (top-5 of one
video), ``POST /v1/timeline`` (per-window top-k over a long video, the answer of ``raysf predict
--timeline``), ``GET /v1/model``, ``GET /healthz``. The model is a checkpoint of ours, an
export (TorchScript or ExportedProgram, with its ``.json`` beside it) or a converted
PyTorchVideo / PySlowFast / mmaction2 checkpoint (``--source``). It serves until Ctrl-C or SIGTERM;
``--smoke-test`` trains the smoke model, serves it, sends one request, prints the answer and stops.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

from pipelines.ingest.config import LimitsConfig
from raysf import console, runtime
from raysf.entry import command_parser, run_command
from training.config import load_train_config
from training.inference.predict import ModelSource, add_model_source_arguments
from training.recipes.smoke import smoke_checkpoint, smoke_videos
from training.serving.admission import ServeLimits
from training.serving.app import ServeConfig, start_service, stop_service
from training.serving.auth import AUTH_MODES, TOKEN_ENV, service_token

TRAIN_CONFIG = Path(__file__).with_name("train.yaml")
#: Hosts only this machine reaches (serving there without a token is the safe default).
LOOPBACK = ("127.0.0.1", "localhost", "::1")

#: What ``--smoke-test`` does for this command.
SMOKE_HELP = "train the tiny smoke model, serve it, classify one test video and stop"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = command_parser("serve", __doc__, SMOKE_HELP, address=True)
    parser.add_argument("checkpoint", nargs="?", help="state.pt / checkpoint dir, or an export")
    add_model_source_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1", help="HTTP address (0.0.0.0: all)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--replicas", type=int, default=1, help="model replicas")
    parser.add_argument("--max-replicas", type=int, default=None, help="autoscale up to this")
    parser.add_argument("--decoders", type=int, default=1, help="decoder replicas (1 CPU each)")
    parser.add_argument("--max-batch-clips", type=int, default=32, help="views per model batch")
    parser.add_argument("--batch-wait-s", type=float, default=0.01, help="batch fill wait")
    add_limit_arguments(parser)
    args = parser.parse_args(argv)
    if not args.smoke_test and args.checkpoint is None:
        parser.error("CHECKPOINT is required (or --smoke-test)")
    return args


def add_limit_arguments(parser: argparse.ArgumentParser) -> None:
    ingest = LimitsConfig()
    parser.add_argument(
        "--allow-uri",
        action="append",
        default=[],
        help="a local root or s3:// prefix requests may name as {'uri': ...} (repeatable)",
    )
    parser.add_argument("--max-bytes", type=int, default=ingest.max_bytes)
    parser.add_argument("--max-pixels", type=int, default=ingest.max_pixels)
    parser.add_argument("--max-duration-s", type=float, default=ingest.max_duration_s)
    parser.add_argument("--timeout-s", type=float, default=ingest.timeout_s)
    parser.add_argument("--max-inflight", type=int, default=8, help="requests at once (429)")
    parser.add_argument(
        "--auth",
        default="auto",
        choices=AUTH_MODES,
        help="bearer token at the ingress: auto (when a token is found), token (required), none",
    )
    parser.add_argument("--token-file", default=None, help=f"the token (else ${TOKEN_ENV})")


def serve_config(args: argparse.Namespace) -> ServeConfig:
    """The typed service of the command line (``ValueError`` naming a bad value), with the
    token found now (``raysf serve`` looks again once Ray runs: :func:`_serve`)."""
    ingest = LimitsConfig(
        max_bytes=args.max_bytes,
        max_pixels=args.max_pixels,
        max_duration_s=args.max_duration_s,
        timeout_s=args.timeout_s,
    )
    limits = ServeLimits(ingest, tuple(args.allow_uri), max_inflight=args.max_inflight)
    return ServeConfig(
        model=ModelSource.from_args(args),
        device=args.device,
        replicas=args.replicas,
        max_replicas=args.max_replicas,
        decoders=args.decoders,
        host=args.host,
        port=args.port,
        limits=limits,
        max_batch_clips=args.max_batch_clips,
        batch_wait_s=args.batch_wait_s,
        token=service_token(args.auth, args.token_file)[0],
    )


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 served until stopped (or the smoke request answered); 1 an expected
    failure (one line); 2 bad arguments or an unreadable checkpoint."""
    args = parse_args(argv)
    return run_command("serve", args, lambda: _serve(args))


def _serve(args: argparse.Namespace) -> int:
    video = None
    if args.smoke_test:
        args.checkpoint, dataset = smoke_checkpoint(load_train_config(TRAIN_CONFIG))
        video = smoke_videos(dataset)[0]
    cfg = serve_config(args)  # bad values fail here, before Ray starts
    _stop_on_signals()
    runtime.init_ray(args.address)
    # a local Ray 2.60 starts with token auth on: the cluster's token is known only now
    token, origin = service_token(args.auth, args.token_file)
    cfg = replace(cfg, token=token)
    url = start_service(cfg)
    auth = f"bearer token required: {origin}" if token else f"no token: {origin}"
    console.line(f"serving {cfg.model.checkpoint} at {url} (POST /v1/classify, /v1/timeline)")
    console.line(f"auth: {auth}")
    if token is None and cfg.host not in LOOPBACK:
        console.line(f"warning: {cfg.host} without a token: anyone who reaches it may call it")
    try:
        if video is not None:
            console.line(json.dumps(classify_file(url, video, cfg.token)))
            return 0
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        stop_service()


def _stop_on_signals() -> None:
    """Ctrl-C and SIGTERM stop the service cleanly (Serve's replicas, then the local Ray), also
    where the shell started this process in the background with SIGINT ignored."""

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, stop)


def classify_file(url: str, video: Path, token: str | None = None) -> dict:
    """``POST /v1/classify`` with the file as the raw body (and the bearer token, if any); the
    JSON answer."""
    headers = {"Content-Type": "application/octet-stream"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(f"{url}/v1/classify", data=video.read_bytes(), headers=headers)
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


if __name__ == "__main__":
    sys.exit(main())
