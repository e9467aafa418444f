"""The service's back ends as plain classes (no Ray): the decoder's views, and the model replica
from every model source ``raysf serve`` takes scoring those views alike."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

import slowfast_model
from pipelines.synth.generate import generate
from raysf.clip_spec import ClipSpec
from training.checkpoints import TrainingState, save_state
from training.inference.export import export_checkpoint
from training.inference.predict import ModelSource
from training.serving.admission import RequestError, ServeLimits
from training.serving.replicas import ModelReplica, VideoDecoder

CLASSES = ["a", "b", "c"]
# slowfast_tiny's own alpha (4): a converted checkpoint built from the preset is this network
SPEC = ClipSpec(slow_frames=4, tau=4, alpha=4, crop_size=32, short_side_range=(32, 40),
                test_short_side=32, num_val_clips=1, num_test_clips=2)  # fmt: skip


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """Our checkpoint, its two exports and its PyTorchVideo and PySlowFast conversions."""
    root = tmp_path_factory.mktemp("replicas")
    torch.manual_seed(0)
    model = slowfast_model.create_model("slowfast_tiny", num_classes=len(CLASSES))
    with torch.no_grad():  # weights far from their initial zeros and ones: varied scores
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    state = TrainingState(model=model.state_dict(), model_config=model.config.to_dict(),
                          clip_spec=SPEC, classes=CLASSES,
                          job_config={"model": {"preset": "slowfast_tiny"}})  # fmt: skip
    ckpt = str(save_state(state, root / "ckpt"))
    # PySlowFast's checkpoints take its index rule (the Slow frames drawn by linspace from the
    # Fast ones): the same network with that rule is their reference
    linspace = dataclasses.replace(state, clip_spec=SPEC.replace(rule="linspace"))
    found = {"raysf": ModelSource(ckpt)}
    found["raysf-linspace"] = ModelSource(str(save_state(linspace, root / "ckpt-linspace")))
    for fmt, name in (("torchscript", "m.torchscript.pt"), ("exported-program", "m.pt2")):
        found[fmt] = ModelSource(str(export_checkpoint(ckpt, fmt, root / name).path))
    classes = root / "classes.txt"
    classes.write_text("\n".join(CLASSES))
    for source in ("pytorchvideo", "pyslowfast"):
        path = root / f"{source}.pyth"
        weights = slowfast_model.export_state_dict(model.state_dict(), source)
        torch.save({"model_state": weights}, path)
        found[source] = ModelSource(str(path), source, "slowfast_tiny", str(classes))
    return found


@pytest.fixture(scope="module")
def views(tmp_path_factory):
    root = tmp_path_factory.mktemp("video")
    (video,) = generate(root, classes=1, videos_per_class=1, seed=3, frames=40, size=(96, 72))
    data = Path(video.path).read_bytes()
    decoded = VideoDecoder(SPEC, ServeLimits()).classify_views(data, "one.mp4")
    assert decoded["video"]["num_frames"] == 40 and decoded["video"]["codec"] == "h264"
    return decoded["fast"]


def test_every_model_source_scores_the_views_alike(sources, views):
    assert views.shape == (6, SPEC.fast_frames, 32, 32, 3)  # 2 windows x 3 crops
    scores = {}
    for name, source in sources.items():
        replica = ModelReplica(source)
        split = replica.score_batch([views[:2], views[2:]])  # two requests in one batch
        assert [len(s) for s in split] == [2, 4]
        scores[name] = np.concatenate(split)
        info = replica.info()
        assert info["classes"] == CLASSES and (info["batches"], info["clips"]) == (1, 6)
        assert info["source"] == source.source
    reference = scores["raysf"]
    np.testing.assert_allclose(reference.sum(1), 1.0, atol=1e-5)
    assert np.ptp(reference, axis=0).max() > 1e-3  # the views score differently
    for name in ("torchscript", "exported-program", "pytorchvideo"):
        np.testing.assert_allclose(scores[name], reference, atol=1e-4, err_msg=name)
    np.testing.assert_allclose(scores["pyslowfast"], scores["raysf-linspace"], atol=1e-4)
    assert np.abs(scores["raysf-linspace"] - reference).max() > 1e-5  # the rule matters


def test_the_decoder_refuses_what_is_not_a_video():
    with pytest.raises(RequestError) as refused:
        VideoDecoder(SPEC, ServeLimits()).classify_views(b"\x00" * 4096, "zeros.bin")
    assert refused.value.status in (415, 422)
