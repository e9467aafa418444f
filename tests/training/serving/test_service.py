"""``raysf serve`` for real: Ray Serve on 127.0.0.1 with a tiny model, started once per module.

Two applications share one Serve instance: the model as our checkpoint (at ``/``) and the same
model exported to TorchScript (at ``/export``). The model is untrained (its weights drawn from a
seed, so windows score differently): these tests check that the service answers what
``raysf predict`` answers, not that the labels are right. Both apps run with small limits so
every refusal is cheap to provoke.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import shutil
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
from training.checkpoints import TrainingState, save_state
from training.inference.export import export_checkpoint
from training.inference.predict import ModelSource, load_predictor, predict_folder
from training.inference.timeline import TimelineOptions
from training.serving.admission import ServeLimits
from training.serving.app import ServeConfig, start_service, stop_service

pytestmark = pytest.mark.slow

CLASSES = ["drift_left", "drift_right", "still"]
SPEC = ClipSpec(
    slow_frames=4,
    tau=4,
    alpha=2,
    crop_size=32,
    short_side_range=(32, 40),
    test_short_side=32,
    num_val_clips=1,
    num_test_clips=2,
)
LIMITS = ServeLimits(
    LimitsConfig(max_bytes=400_000, max_duration_s=4.0, timeout_s=60.0),
    max_inflight=2,
    max_windows=20,
)


def _checkpoint(root: Path) -> Path:
    torch.manual_seed(0)
    model = slowfast_model.create_model("slowfast_tiny", alpha=2, num_classes=3)
    with torch.no_grad():  # weights far from their initial zeros and ones: varied scores
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    state = TrainingState(
        model=model.state_dict(),
        model_config=model.config.to_dict(),
        clip_spec=SPEC,
        classes=CLASSES,
        job_config={"model": {"preset": "slowfast_tiny"}},
    )
    return save_state(state, root / "ckpt")


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    import ray

    root = tmp_path_factory.mktemp("serve")
    ckpt = _checkpoint(root)
    export = export_checkpoint(str(ckpt), "torchscript", root / "model.torchscript.pt").path
    videos = root / "videos"
    videos.mkdir()
    # a SynthMotion video of the smoke set's size: 40 frames at 24 fps, 96x72
    made = generate(root / "synth", classes=3, videos_per_class=1, seed=7, frames=40, size=(96, 72))
    video = Path(shutil.copy(made[0].path, videos / "one.mp4"))
    long = Path(generate(root / "long", classes=1, videos_per_class=1, seed=4, frames=150)[0].path)
    ray.shutdown()
    # 2 apps x (decoder + model) and one Ray Data actor, each 1 logical CPU
    ray.init(num_cpus=5, include_dashboard=False, log_to_driver=False)
    port = free_port()
    limits = dataclasses.replace(LIMITS, allowed_uris=(str(videos),))
    try:
        url = start_service(ServeConfig(ModelSource(str(ckpt)), port=port, limits=limits))
        cfg = ServeConfig(ModelSource(str(export)), port=port, limits=limits)
        export_url = start_service(cfg, name="export", route_prefix="/export")
        yield {"url": url, "export_url": export_url, "ckpt": ckpt, "video": video, "long": long}
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
    windows = {tuple(t["label"] for t in w["top"]) for w in online["windows"]}
    assert len(windows) > 1 or len({w["top"][0]["score"] for w in online["windows"]}) > 1


def test_model_info_health_and_the_export(service):
    info = requests.get(f"{service['url']}/v1/model", timeout=30).json()
    assert info["classes"] == CLASSES and info["source"] == "raysf"
    assert info["device_settings"] == "cpu: fp32, contiguous, eager"
    assert info["service"]["limits"]["max_bytes"] == 400_000
    assert requests.get(f"{service['url']}/healthz", timeout=30).json()["status"] == "ok"
    exported = requests.get(f"{service['export_url']}/v1/model", timeout=30).json()
    assert exported["checkpoint"].endswith(".torchscript.pt") and exported["classes"] == CLASSES
    data = service["video"].read_bytes()
    a = requests.post(f"{service['url']}/v1/classify", data=data, timeout=60).json()
    b = requests.post(f"{service['export_url']}/v1/classify", data=data, timeout=60).json()
    assert max(abs(_top(a)[k] - _top(b)[k]) for k in _top(a)) < 1e-4


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
