"""``raysf serve`` for real: Ray Serve on 127.0.0.1 with a tiny model, started once per module.

Three applications share one Serve instance, all serving one tiny network trained in this
process (:mod:`tests.training.serving.tiny_model`, seconds): our checkpoint (at ``/``), its
TorchScript export behind a bearer token (at ``/export``), and the same weights converted to a
PyTorchVideo checkpoint (at ``/converted``). The tests check that the service answers what
``raysf predict`` answers, that its labels are right on videos of another seed, every refusal,
the token, and a model replica killed under load. The apps run with small limits so every
refusal is cheap to provoke.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import requests
import torch

import slowfast_model
from infra.local.procs import free_port
from pipelines.ingest.config import LimitsConfig
from pipelines.synth.generate import generate
from raysf.clip_spec import ClipSpec
from tests.training.serving.tiny_model import CLASSES, SPEC, synth_videos, train_tiny_checkpoint
from training.checkpoints import load_state
from training.inference.export import export_checkpoint
from training.inference.predict import ModelSource, load_predictor, predict_folder
from training.inference.timeline import TimelineOptions
from training.serving.admission import ServeLimits
from training.serving.app import ServeConfig, start_service, stop_service

pytestmark = pytest.mark.slow

LIMITS = ServeLimits(
    LimitsConfig(max_bytes=400_000, max_duration_s=4.0, timeout_s=60.0),
    max_inflight=2,
    max_windows=20,
)
TOKEN = "a-test-token-for-the-export-app"


def _converted(ckpt: Path, root: Path) -> ModelSource:
    """Our checkpoint's weights in PyTorchVideo's layout, with a class file."""
    state = load_state(ckpt)
    path = root / "converted_pytorchvideo.pyth"
    weights = slowfast_model.export_state_dict(state.model, "pytorchvideo")
    torch.save({"model_state": weights}, path)
    classes = root / "classes.txt"
    classes.write_text("\n".join(CLASSES) + "\n")
    return ModelSource(str(path), "pytorchvideo", "slowfast_tiny", str(classes))


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    import ray

    root = tmp_path_factory.mktemp("serve")
    ckpt = train_tiny_checkpoint(root)
    export = export_checkpoint(str(ckpt), "torchscript", root / "model.torchscript.pt").path
    converted = _converted(ckpt, root)
    videos = root / "videos"
    videos.mkdir()
    # a SynthMotion video of the smoke set's size: 40 frames at 24 fps, 96x72
    made = generate(root / "synth", classes=3, videos_per_class=1, seed=7, frames=40, size=(96, 72))
    video = Path(shutil.copy(made[0].path, videos / "one.mp4"))
    long = Path(generate(root / "long", classes=1, videos_per_class=1, seed=4, frames=150)[0].path)
    ray.shutdown()
    # 3 apps x (decoder + model) and one Ray Data actor, each 1 logical CPU
    ray.init(num_cpus=7, include_dashboard=False, log_to_driver=False)
    port = free_port()
    limits = dataclasses.replace(LIMITS, allowed_uris=(str(videos),))
    try:
        url = start_service(ServeConfig(ModelSource(str(ckpt)), port=port, limits=limits))
        cfg = ServeConfig(ModelSource(str(export)), port=port, limits=limits, token=TOKEN)
        export_url = start_service(cfg, name="export", route_prefix="/export")
        cfg = ServeConfig(converted, port=port, limits=limits)
        converted_url = start_service(cfg, name="converted", route_prefix="/converted")
        yield {
            "url": url,
            "export_url": export_url,
            "converted_url": converted_url,
            "converted": converted,
            "ckpt": ckpt,
            "video": video,
            "long": long,
            "root": root,
        }
    finally:
        stop_service()
        ray.shutdown()


def _top(answer) -> dict[str, float]:
    return {t["label"]: t["score"] for t in answer["top5"]}


def test_classify_an_upload_answers_as_predict(service):
    data = service["video"].read_bytes()
    raw = requests.post(f"{service['url']}/v1/classify", data=data, timeout=60)
    form = requests.post(
        f"{service['url']}/v1/classify", files={"video": ("one.mp4", data)}, timeout=60
    )
    assert raw.status_code == 200 and form.status_code == 200, (raw.text, form.text)
    answer = raw.json()
    assert form.json()["video"] == "one.mp4" and _top(form.json()) == _top(answer)
    assert answer["views"] == 6  # 2 windows x 3 crops, the predict protocol
    assert ClipSpec.from_dict(answer["clip_spec"]) == SPEC
    assert answer["input"]["codec"] == "h264" and answer["input"]["num_frames"] == 40
    assert set(answer["timings_ms"]) == {"decode", "model", "total"}
    predictor = load_predictor(ModelSource(str(service["ckpt"])))
    expected = dict(predictor.top_k(predictor.video_scores(str(service["video"]))))
    assert _top(answer).keys() == expected.keys()
    assert max(abs(_top(answer)[k] - expected[k]) for k in expected) < 1e-4


def test_timeline_answers_as_predict_timeline_on_ray_data(service, tmp_path):
    query = {"stride_s": "0.25", "smooth": "3", "top_k": "2"}
    online = requests.post(
        f"{service['url']}/v1/timeline",
        params=query,
        json={"uri": str(service["video"])},
        timeout=60,
    )
    assert online.status_code == 200, online.text
    online = online.json()
    out = tmp_path / "timeline.parquet"
    options = TimelineOptions(stride_s=0.25, smooth=3, top_k=2)
    predict_folder(
        ModelSource(str(service["ckpt"])), str(service["video"].parent), str(out), timeline=options
    )
    (row,) = pq.read_table(out).to_pylist()
    assert row["error"] == ""
    batch = json.loads(row["timeline"])
    # 40 frames at 24 fps, windows of 16 frames every 6: starts 0, 6, ..., 24
    assert online["num_windows"] == batch["num_windows"] == 5
    for key in ("window_s", "stride_s", "smooth"):
        assert online[key] == batch[key]
    for mine, theirs in zip(online["windows"], batch["windows"], strict=True):
        assert (mine["start_s"], mine["end_s"]) == (theirs["start_s"], theirs["end_s"])
        assert [t["label"] for t in mine["top"]] == [t["label"] for t in theirs["top"]]
        scores = [t["score"] for t in mine["top"]], [t["score"] for t in theirs["top"]]
        np.testing.assert_allclose(*scores, atol=1e-4)
    assert _top(online).keys() == _top(batch).keys()
    # the trained network sees the video's class in every window (a drift_right video)
    assert {w["top"][0]["label"] for w in online["windows"]} == {"drift_right"}, online


def test_labels_are_right_on_videos_of_another_seed(service):
    """The trained network's answers through the service: each class's held-out videos (a
    SynthMotion seed it never saw) classified, and a timeline of a ``still`` video."""
    held_out = synth_videos(service["root"] / "held_out", per_class=3, seed=11)
    right = []
    for video in held_out:
        data = Path(video.path).read_bytes()
        answer = requests.post(f"{service['url']}/v1/classify", data=data, timeout=60).json()
        right.append(answer["top5"][0]["label"] == video.label)
    # 9 of 9 when this test was written; chance gets 7 of 9 with probability 0.008
    assert sum(right) >= 7, [(v.label, ok) for v, ok in zip(held_out, right, strict=True)]
    still = next(v for v in held_out if v.label == "still")
    timeline = requests.post(
        f"{service['url']}/v1/timeline", data=Path(still.path).read_bytes(), timeout=60
    ).json()
    assert timeline["top5"][0]["label"] == "still", timeline


def test_model_info_health_and_the_export(service):
    info = requests.get(f"{service['url']}/v1/model", timeout=30).json()
    assert info["classes"] == CLASSES and info["source"] == "raysf"
    assert info["device_settings"] == "cpu: fp32, contiguous, eager"
    assert info["service"]["limits"]["max_bytes"] == 400_000
    assert info["service"]["auth"] == "none"
    assert requests.get(f"{service['url']}/healthz", timeout=30).json()["status"] == "ok"
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    exported = requests.get(f"{service['export_url']}/v1/model", headers=bearer, timeout=30)
    exported = exported.json()
    assert exported["checkpoint"].endswith(".torchscript.pt") and exported["classes"] == CLASSES
    assert exported["service"]["auth"] == "token" and TOKEN not in json.dumps(exported)
    data = service["video"].read_bytes()
    a = requests.post(f"{service['url']}/v1/classify", data=data, timeout=60).json()
    b = requests.post(
        f"{service['export_url']}/v1/classify", data=data, headers=bearer, timeout=60
    ).json()
    assert max(abs(_top(a)[k] - _top(b)[k]) for k in _top(a)) < 1e-4


def test_the_token_app_refuses_requests_without_its_token(service):
    url, data = service["export_url"], service["video"].read_bytes()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        for method, route, body in (
            ("post", "classify", data),
            ("post", "timeline", data),
            ("get", "model", None),
        ):
            answer = requests.request(
                method, f"{url}/v1/{route}", data=body, headers=headers, timeout=60
            )
            assert answer.status_code == 401, (route, headers, answer.text)
            assert answer.json()["error"] == "unauthorized"
            assert answer.headers["WWW-Authenticate"] == "Bearer"
    # the probe of a load balancer needs no token
    assert requests.get(f"{url}/healthz", timeout=30).json()["status"] == "ok"


def test_a_converted_pytorchvideo_checkpoint_serves_as_predict_reads_it(service):
    source = service["converted"]
    info = requests.get(f"{service['converted_url']}/v1/model", timeout=30).json()
    assert info["source"] == "pytorchvideo" and info["classes"] == CLASSES
    data = service["video"].read_bytes()
    answer = requests.post(f"{service['converted_url']}/v1/classify", data=data, timeout=60)
    assert answer.status_code == 200, answer.text
    predictor = load_predictor(source)
    assert answer.json()["views"] == predictor.spec.num_test_clips * predictor.spec.num_test_crops
    expected = dict(predictor.top_k(predictor.video_scores(str(service["video"]))))
    assert max(abs(_top(answer.json())[k] - expected[k]) for k in expected) < 1e-4


def test_bad_requests_are_refused_with_a_json_reason(service):
    url, video = service["url"], service["video"]
    data = video.read_bytes()
    cases = [
        ("classify", {"data": b"not a video at all"}, 415, "unreadable"),
        ("classify", {"data": b"\x89PNG\r\n\x1a\n" + bytes(100)}, 415, "image"),
        ("classify", {"data": b"#EXTM3U\nhttp://x/a.ts\n"}, 415, "container_not_allowed"),
        ("classify", {"data": b""}, 400, "empty"),
        ("classify", {"data": bytes(500_000)}, 413, "file_too_large"),
        ("classify", {"data": data[: len(data) // 2]}, 422, "truncated"),
        ("classify", {"data": service["long"].read_bytes()}, 413, "too_long"),
        ("classify", {"json": {"uri": "/etc/passwd"}}, 403, "uri_not_allowed"),
        ("classify", {"json": {"uri": f"{video.parent}/../x.mp4"}}, 403, "uri_not_allowed"),
        ("classify", {"json": {"uri": str(video.parent / "nope.mp4")}}, 404, "uri_not_found"),
        ("classify", {"json": {"video": "x"}}, 400, "bad_request"),
        ("timeline?smooth=2", {"data": data}, 400, "bad_option"),
        ("timeline?stride_s=-1", {"data": data}, 400, "bad_option"),
        ("timeline?stride_s=0.0001", {"data": data}, 413, "too_many_windows"),
    ]
    for route, body, status, reason in cases:
        answer = requests.post(f"{url}/v1/{route}", timeout=60, **body)
        assert (answer.status_code, answer.json()["error"]) == (status, reason), (
            route,
            answer.text,
        )
        assert answer.json()["detail"]
    # ...and the service keeps serving
    assert requests.post(f"{url}/v1/classify", data=data, timeout=60).status_code == 200


def test_over_the_inflight_limit_is_429_and_the_rest_succeed(service):
    data = service["video"].read_bytes()

    def timeline(_):
        answer = requests.post(
            f"{service['url']}/v1/timeline", params={"stride_s": "0.1"}, data=data, timeout=60
        )
        return answer.status_code, answer.headers.get("Retry-After")

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(timeline, range(8)))
    codes = sorted(code for code, _ in answers)
    assert set(codes) <= {200, 429} and 429 in codes and 200 in codes, codes
    assert all(retry == "1" for code, retry in answers if code == 429)
    assert time.perf_counter() - start < 30


def _replicas(app: str, deployment: str) -> list[str]:
    """The actor names of ``app``'s ``deployment`` replicas alive now."""
    import ray

    prefix = f"::{app}#{deployment}#"  # SERVE_REPLICA::<app>#<deployment>#<id>
    actors = ray.util.list_named_actors(all_namespaces=True)
    return [a["name"] for a in actors if a["namespace"] == "serve" and prefix in a["name"]]


def _kill_replica(app: str, deployment: str) -> str:
    """Kill the one replica of ``app``'s ``deployment`` (its process, no restart of its own:
    Ray Serve's controller must notice and start another); its actor name."""
    import ray

    (name,) = _replicas(app, deployment)
    ray.kill(ray.get_actor(name, namespace="serve"), no_restart=True)
    return name


def test_a_model_replica_killed_under_load_is_retried_and_replaced(service):
    """Two clients classify in a loop (the app's in-flight limit) while the only model replica
    is killed: each request either succeeds (its scoring sent again to the replica Serve starts
    in its place) or is 503 ``replica_lost``; none is a 500 or hangs, and the service serves
    again afterwards, from a new replica."""
    url, data = service["url"], service["video"].read_bytes()
    results: list[tuple[float, int, str]] = []
    killed_at: list[float] = []
    stop = threading.Event()

    def client(deadline: float) -> None:
        while time.monotonic() < deadline and not stop.is_set():
            answer = requests.post(f"{url}/v1/classify", data=data, timeout=90)
            error = "" if answer.status_code == 200 else answer.json()["error"]
            results.append((time.monotonic(), answer.status_code, error))
            if killed_at and answer.status_code == 200 and time.monotonic() > killed_at[0]:
                return

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        clients = [pool.submit(client, time.monotonic() + 90) for _ in range(2)]
        try:
            while len(results) < 4 and not any(c.done() for c in clients):
                time.sleep(0.05)
            killed = _kill_replica("raysf", "model")
            killed_at.append(time.monotonic())
            for future in clients:
                future.result(timeout=120)
        finally:
            stop.set()
    after = [(code, error) for at, code, error in results if at > killed_at[0]]
    print(f"answers after the kill: {after}")
    assert after and all(
        code == 200 or (code, error) == (503, "replica_lost") for code, error in after
    ), after
    assert after[-1][0] == 200, after
    info = requests.get(f"{url}/v1/model", timeout=30).json()
    assert info["classes"] == CLASSES
    assert _replicas("raysf", "model") and killed not in _replicas("raysf", "model")


def test_the_load_benchmark_s_clients_against_the_service(service):
    """``benchmarks/serve_bench.py``'s load loop, small, against this service (its maths are
    tests/test_serve_bench.py's)."""
    from benchmarks.serve_bench import load_level

    body = service["video"].read_bytes()
    level = load_level(service["url"], body, clients=2, requests_max=6, max_seconds=60, warmup=1)
    assert (level["requests"], level["ok"], level["failed"], level["warmup_failed"]) == (6, 6, 0, 0)
    assert level["views_per_request"] == 6 and level["clips_per_s"] > 0
    assert level["p50_ms"] <= level["p99_ms"] and 0 < level["decode_share"] < 1
