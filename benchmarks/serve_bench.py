"""Load benchmark of ``raysf serve`` over loopback: clips/s through the service against the same
model called directly in one process, client latency at 1, 4 and 16 concurrent clients, the
decode share, and bad requests refused (JSON to stdout, progress to stderr; stops by itself).

    python benchmarks/serve_bench.py [--checkpoint PATH [--source --preset --classes]]
        [--video FILE | --seconds 10] [--device cpu|cuda] [--clients 1,4,16] [--requests 200]
        [--max-seconds 30] [--direct-threads 1,N] [--decoders 1] [--replicas 1]
        [--max-batch-clips 32] [--batch-wait-s 0.01] [--max-bytes N] [--out FILE] [--smoke-test]

Default inputs, made in a temporary folder: an untrained ``slowfast_tiny`` (32-pixel crops, 10
test windows x 3 crops = 30 views a video) and a 10-second SynthMotion video (96x72, 24 fps).

1. ``direct``: the model in this process (``load_predictor``), once per torch thread count of
   ``--direct-threads`` (default 1 and torch's own; the fastest is the baseline), per request
   the two steps of ``Predictor.video_scores`` timed apart (decode, then model), serially,
   after one untimed call: ``--requests`` calls or ``--max-seconds``.
2. The service: a fresh local Ray (one logical CPU per decoder and model replica),
   ``start_service`` on 127.0.0.1 at a free port; per level of ``--clients``, one untimed
   request per client, then ``POST /v1/classify`` (raw body) from that many threads (an HTTP
   session each) until ``--requests`` were sent or ``--max-seconds`` passed.
3. Bad on purpose: not a video, empty, over ``--max-bytes``, truncated; each must get a 4xx JSON
   answer naming its ``error`` (``bad_refused_as_expected`` of ``bad_sent``).

Reading it: ``clips_per_s`` is the views scored by successful requests over the wall time;
``serve_over_direct`` a level's over ``direct``'s, same run: 1.0 means HTTP, Serve's hops, the
probe and batching cost nothing against decoding and scoring back to back in one process; above
1.0 decoders and model overlap (on a small host the clients share its cores). Latency is the
client's (p50/p95/p99 of the successful requests); ``decode_share`` sums the ingress's
``timings_ms`` (decode over total; the service's decode includes the probe). ``failed``: good
requests (warm-ups too) not answered 200 plus bad ones not refused as expected.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import requests
import torch

import slowfast_model
from infra.local.procs import free_port
from pipelines.decode.frame_table import read_frame_table
from pipelines.ingest.config import LimitsConfig
from pipelines.synth.generate import generate
from pipelines.views import video_views
from raysf.clip_spec import ClipSpec
from training.checkpoints import TrainingState, save_state
from training.inference.predict import ModelSource, add_model_source_arguments, load_predictor
from training.serving.admission import ServeLimits
from training.serving.app import ServeConfig, start_service, stop_service

#: The tiny model's clip spec: the service test's, with 10 test windows (30 views a video).
SPEC = ClipSpec(slow_frames=4, tau=4, alpha=2, crop_size=32, short_side_range=(32, 40),
                test_short_side=32, num_val_clips=1, num_test_clips=10)  # fmt: skip
REQUEST_TIMEOUT_S = 120.0


def log(text: str) -> None:
    print(f"[serve_bench] {text}", file=sys.stderr, flush=True)


def tiny_checkpoint(root: Path) -> str:
    """An untrained ``slowfast_tiny`` (3 classes, :data:`SPEC`) saved under ``root``."""
    torch.manual_seed(0)
    model = slowfast_model.create_model("slowfast_tiny", alpha=SPEC.alpha, num_classes=3)
    state = TrainingState(model=model.state_dict(), model_config=model.config.to_dict(),
                          clip_spec=SPEC, classes=["drift_left", "drift_right", "still"],
                          job_config={"model": {"preset": "slowfast_tiny"}})  # fmt: skip
    return str(save_state(state, root / "ckpt"))


def synth_video(root: Path, seconds: float, size: tuple[int, int] = (96, 72)) -> Path:
    """A SynthMotion video of ``seconds`` (its frame rate is drawn: the frames follow it)."""
    fps = 24
    for attempt in range(3):
        frames = max(8, round(seconds * fps))
        (made,) = generate(root / f"synth{attempt}", classes=1, videos_per_class=1, seed=1,
                           frames=frames, size=size)  # fmt: skip
        if made.spec.fps == fps:
            return Path(made.path)
        fps = made.spec.fps
    return Path(made.path)


def latency_ms(values: list[float]) -> dict[str, float | None]:
    """p50/p95/p99 (linear interpolation) and the mean and max of ``values`` (ms)."""
    keys = ("p50_ms", "p95_ms", "p99_ms", "mean_ms", "max_ms")
    if not values:
        return dict.fromkeys(keys)
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    figures = (p50, p95, p99, np.mean(values), np.max(values))
    return {k: round(float(v), 2) for k, v in zip(keys, figures, strict=True)}


def ratio(num: float | None, den: float | None) -> float | None:
    """``num / den`` to 3 decimals; ``None`` when either is missing or ``den`` is 0."""
    return None if num is None or not den else round(num / den, 3)


def summarise(records: list[dict], wall_s: float) -> dict:
    """One level's figures from its requests (``status``, ``latency_ms``, and for an answer
    ``views`` and ``timings`` as ``timings_ms``); latency over the successful ones only."""
    ok = [r for r in records if r["status"] == 200]
    views = sum(r["views"] for r in ok)
    sums = {k: sum(r["timings"][k] for r in ok) for k in ("decode", "model", "total")}
    statuses = Counter(str(r["status"]) for r in records)
    return {
        "requests": len(records),
        "ok": len(ok),
        "failed": len(records) - len(ok),
        "statuses": dict(sorted(statuses.items())),
        "wall_s": round(wall_s, 3),
        "requests_per_s": ratio(len(ok), wall_s),
        "clips_per_s": ratio(views, wall_s),
        "views_per_request": ratio(views, len(ok)),
        **latency_ms([r["latency_ms"] for r in ok]),
        "decode_share": ratio(sums["decode"], sums["total"]),
        "model_share": ratio(sums["model"], sums["total"]),
        "ingress_mean_ms": {k: ratio(v, len(ok)) for k, v in sums.items()},
    }


def post(session: requests.Session, url: str, body: bytes) -> dict:
    """One ``POST /v1/classify`` of ``body``: its record (status 0: no HTTP answer)."""
    start = time.perf_counter()
    try:
        answer = session.post(f"{url}/v1/classify", data=body, timeout=REQUEST_TIMEOUT_S)
        status, content = answer.status_code, answer.json() if answer.content else {}
    except (requests.RequestException, ValueError) as exc:
        status, content = 0, {"error": type(exc).__name__}
    record = {"status": status, "latency_ms": (time.perf_counter() - start) * 1000}
    if status == 200:
        record.update(views=content["views"], timings=content["timings_ms"])
    else:
        record["error"] = content.get("error") if isinstance(content, dict) else None
    return record


def run_clients(
    url: str, body: bytes, sessions: list, count: int, max_seconds: float | None
) -> tuple[list[dict], float]:
    """``count`` requests from one thread per session (fewer once ``max_seconds`` passed);
    the records and the wall time until the last answer."""
    records: list[dict] = []
    lock, sent = threading.Lock(), [0]
    start = time.perf_counter()
    deadline = start + max_seconds if max_seconds else float("inf")

    def client(session: requests.Session) -> None:
        while True:
            with lock:
                if sent[0] >= count or time.perf_counter() >= deadline:
                    return
                sent[0] += 1
            record = post(session, url, body)
            with lock:
                records.append(record)

    with concurrent.futures.ThreadPoolExecutor(len(sessions)) as pool:
        list(pool.map(client, sessions))
    return records, time.perf_counter() - start


def load_level(
    url: str, body: bytes, clients: int, requests_max: int, max_seconds: float, warmup: int = 0
) -> dict:
    """``clients`` concurrent clients posting ``body`` to ``url``'s ``/v1/classify``: after
    ``warmup`` untimed requests, at most ``requests_max`` or ``max_seconds``; its summary."""
    sessions = [requests.Session() for _ in range(clients)]
    try:
        warm, _ = run_clients(url, body, sessions, warmup, None) if warmup else ([], 0.0)
        records, wall = run_clients(url, body, sessions, requests_max, max_seconds)
    finally:
        for session in sessions:
            session.close()
    level = {"clients": clients, **summarise(records, wall)}
    level["warmup_failed"] = sum(r["status"] != 200 for r in warm)
    return level


def direct(predictor, body: bytes, requests_max: int, max_seconds: float) -> dict:
    """The model in this process, decode then model per request, serially (module docstring)."""
    predictor.video_scores(body)  # warm-up
    decode_s, model_s, views, latencies = 0.0, 0.0, 0, []
    start = time.perf_counter()
    while len(latencies) < requests_max and time.perf_counter() - start < max_seconds:
        t0 = time.perf_counter()
        fast = video_views(body, predictor.spec, name="video").fast
        t1 = time.perf_counter()
        predictor.view_scores(fast).mean(0)
        t2 = time.perf_counter()
        decode_s, model_s, views = decode_s + t1 - t0, model_s + t2 - t1, views + len(fast)
        latencies.append((t2 - t0) * 1000)
    wall = time.perf_counter() - start
    return {"requests": len(latencies), "wall_s": round(wall, 3),
            "clips_per_s": ratio(views, wall), "views_per_request": ratio(views, len(latencies)),
            **latency_ms(latencies), "decode_share": ratio(decode_s, decode_s + model_s),
            "torch_threads": torch.get_num_threads()}  # fmt: skip


def refused_as_expected(status: int, answer: object) -> bool:
    """A 4xx answer whose JSON names its ``error`` (a bad request's expected answer)."""
    return 400 <= status < 500 and isinstance(answer, dict) and bool(answer.get("error"))


def send_bad(url: str, body: bytes, max_bytes: int) -> dict:
    """Each bad request once: what came back, and how many were refused as expected."""
    bodies = {"not_a_video": b"this is not a video at all", "empty": b"",
              "too_large": bytes(max_bytes + 1), "truncated": body[: len(body) // 2]}  # fmt: skip
    cases = {}
    for name, data in bodies.items():
        try:
            answer = requests.post(f"{url}/v1/classify", data=data, timeout=REQUEST_TIMEOUT_S)
            status, content = answer.status_code, answer.json()
        except (requests.RequestException, ValueError) as exc:
            status, content = 0, {"exception": type(exc).__name__}
        ok = refused_as_expected(status, content)
        cases[name] = {"status": status, "error": content.get("error"), "ok": ok}
    refused = sum(case["ok"] for case in cases.values())
    return {"bad_sent": len(cases), "bad_refused_as_expected": refused, "bad_cases": cases}


def compare(direct_result: dict, levels: list[dict], bad: dict) -> dict:
    """The top-level figures: ``serve_over_direct`` per level (set in ``levels``) and at the
    highest concurrency, ``p99_over_p50`` at the lowest, the unexpected failures."""
    for level in levels:
        level["serve_over_direct"] = ratio(level["clips_per_s"], direct_result["clips_per_s"])
        level["p99_over_p50"] = ratio(level["p99_ms"], level["p50_ms"])
    top = max(levels, key=lambda level: level["clients"])
    low = min(levels, key=lambda level: level["clients"])
    sent, refused = bad["bad_sent"], bad["bad_refused_as_expected"]
    failed = sum(level["failed"] + level["warmup_failed"] for level in levels) + sent - refused
    return {f"serve_over_direct_{top['clients']}": top["serve_over_direct"],
            f"p99_over_p50_{low['clients']}": low["p99_over_p50"], "failed": failed,
            "bad_sent": sent, "bad_refused_as_expected": refused}  # fmt: skip


def start(args: argparse.Namespace, model: ModelSource) -> str:
    """The service started at a free port (a new one if Ray's processes took it meanwhile)."""
    inflight = max(8, *args.clients)  # the highest level is never refused as busy
    limits = ServeLimits(LimitsConfig(max_bytes=args.max_bytes), max_inflight=inflight)
    for attempt in range(3):
        cfg = ServeConfig(
            model, device=args.device, replicas=args.replicas, decoders=args.decoders,
            port=free_port("127.0.0.1"), limits=limits, max_batch_clips=args.max_batch_clips,
            batch_wait_s=args.batch_wait_s,
        )  # fmt: skip
        try:
            return start_service(cfg)
        except Exception as exc:  # noqa: BLE001 - Serve's proxy: "Failed to bind to address"
            if attempt == 2 or "bind" not in str(exc):
                raise
            log(f"port {cfg.port} taken, another one ({exc.__class__.__name__})")
            stop_service()
    raise AssertionError("not reached")


def run_service(args: argparse.Namespace, model: ModelSource, body: bytes) -> dict:
    """Start Ray and the service, run every level and the bad requests, stop both."""
    # heavy optional: Ray starts only here
    import ray

    started = time.perf_counter()
    ray.init(address="local", num_cpus=args.decoders + args.replicas,
             include_dashboard=False, log_to_driver=False)  # fmt: skip
    try:
        url = start(args, model)
        requests.get(f"{url}/healthz", timeout=30).raise_for_status()  # serve.run waited
        startup_s = round(time.perf_counter() - started, 1)
        log(f"service up at {url} in {startup_s} s")
        levels = []
        for clients in args.clients:
            level = load_level(url, body, clients, args.requests, args.max_seconds, clients)
            log(f"{clients} clients: {level['ok']}/{level['requests']} ok, "
                f"{level['clips_per_s']} clips/s, p50 {level['p50_ms']} ms")  # fmt: skip
            levels.append(level)
        bad = send_bad(url, body, args.max_bytes)
        info = requests.get(f"{url}/v1/model", timeout=30).json()
    finally:
        stop_service()
        ray.shutdown()
    batches = {k: info[k] for k in ("batches", "clips", "device_settings")}
    return {"startup_s": startup_s, "service": info["service"], "model_replica": batches,
            "levels": levels, "bad": bad}  # fmt: skip


def machine() -> dict:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    cpu = next((ln.split(":", 1)[1].strip() for ln in lines if "model name" in ln), None)
    git = ["git", "-C", str(Path(__file__).parent), "rev-parse", "--short", "HEAD"]
    commit = subprocess.run(git, capture_output=True, text=True).stdout.strip() or None
    return {"cpus": os.cpu_count(), "cpu_model": cpu, "python": platform.python_version(),
            "torch": torch.__version__, "commit": commit,
            "loadavg_start": [round(v, 2) for v in os.getloadavg()]}  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=None, help="default: a tiny model made here")
    add_model_source_arguments(parser)
    parser.add_argument("--video", default=None, help="default: a SynthMotion video made here")
    parser.add_argument("--seconds", type=float, default=10.0, help="the made video's length")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--clients", default="1,4,16", help="concurrency levels")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per level")
    parser.add_argument("--max-seconds", type=float, default=30.0, help="time bound per level")
    threads = f"1,{torch.get_num_threads()}"
    parser.add_argument("--direct-threads", default=threads, help="torch threads tried, direct")
    parser.add_argument("--decoders", type=int, default=1)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--max-batch-clips", type=int, default=32)
    parser.add_argument("--batch-wait-s", type=float, default=0.01)
    parser.add_argument("--max-bytes", type=int, default=4 << 20, help="the service's body cap")
    parser.add_argument("--out", default=None, help="also write the JSON here")
    parser.add_argument("--smoke-test", action="store_true", help="clients 1,2; 4 requests")
    args = parser.parse_args(argv)
    if args.smoke_test:
        args.clients, args.requests, args.max_seconds = "1,2", 4, 10.0
    args.clients = sorted({int(c) for c in args.clients.split(",")})
    args.direct_threads = sorted({int(t) for t in args.direct_threads.split(",")})
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # The JSON alone on stdout: fd 1 goes to stderr (Ray's driver and workers print there too).
    stdout = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    host = machine()
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        checkpoint = args.checkpoint or tiny_checkpoint(Path(tmp))
        model = ModelSource(checkpoint, args.source, args.preset, args.classes)
        video = Path(args.video) if args.video else synth_video(Path(tmp), args.seconds)
        body = video.read_bytes()
        args.max_bytes = max(args.max_bytes, 2 * len(body))  # the good requests stay under it
        frames = read_frame_table(body)
        table = {"frames": frames.num_frames, "fps": round(frames.fps, 3)}
        predictor = load_predictor(model, args.device)
        by_threads = {}
        for threads in args.direct_threads:  # the baseline is the fastest thread count
            torch.set_num_threads(threads)
            by_threads[threads] = direct(predictor, body, args.requests, args.max_seconds)
            log(f"direct, {threads} threads: {by_threads[threads]['clips_per_s']} clips/s")
        base = max(by_threads.values(), key=lambda result: result["clips_per_s"])
        served = run_service(args, model, body)
    report = {
        "benchmark": "serve_bench",
        **compare(base, served["levels"], served["bad"]),
        "machine": {**host, "loadavg_end": [round(v, 2) for v in os.getloadavg()]},
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "model": {"checkpoint": args.checkpoint or "tiny (made here)", **predictor.describe()},
        "video": {"file": args.video or "synth (made here)", "bytes": len(body), **table},
        "direct": base,
        "direct_by_threads": by_threads,
        **served,
    }
    text = json.dumps(report, indent=2)
    print(text, file=stdout, flush=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
