"""A tiny SlowFast trained in this process, in seconds, so the serving tests can check labels.

Three SynthMotion classes a tiny network tells apart after ~200 steps (``drift_right``,
``drift_left``, ``still``), learned from the ``predict`` test views of 10 videos per class
(and their mirror images with the drift labels swapped), with a time-difference Fast input and
48-pixel crops: at 32 pixels the drift of a 96x72 video is too small for it to learn the
direction in this budget, and an RGB Fast input does not learn SynthMotion at this size (issue
29). The views are cut by :func:`pipelines.views.video_views` and turned into tensors by the
:class:`~training.inference.predict.Predictor` that serves the result, so training and serving
see the same preprocessing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

import slowfast_model
from pipelines.synth.generate import SynthVideo, generate
from pipelines.views import video_views
from raysf.clip_spec import ClipSpec
from training.checkpoints import TrainingState, save_state
from training.inference.predict import ModelSource, load_predictor

CLASSES = ["drift_left", "drift_right", "still"]
#: A horizontal mirror swaps these labels.
MIRRORED = {"drift_left": "drift_right", "drift_right": "drift_left", "still": "still"}
SPEC = ClipSpec(
    slow_frames=4,
    tau=4,
    alpha=2,
    crop_size=48,
    short_side_range=(48, 56),
    test_short_side=48,
    num_val_clips=1,
    num_test_clips=2,
)
#: Videos of the smoke set's size: 40 frames at 24 fps, 96x72.
VIDEO = {"frames": 40, "size": (96, 72)}


def synth_videos(root: Path, per_class: int, seed: int) -> list[SynthVideo]:
    """``per_class`` SynthMotion videos of each of :data:`CLASSES`, all in one split."""
    return generate(
        root, classes=3, videos_per_class=per_class, seed=seed, splits={"test": 1.0}, **VIDEO
    )


def _training_views(videos: list[SynthVideo]) -> tuple[np.ndarray, torch.Tensor]:
    """uint8 views of each video and of its mirror image, with their labels."""
    views, labels = [], []
    for video in videos:
        fast = video_views(str(video.path), SPEC).fast
        views += [fast, fast[:, :, :, ::-1]]
        labels += [CLASSES.index(video.label)] * len(fast)
        labels += [CLASSES.index(MIRRORED[video.label])] * len(fast)
    return np.ascontiguousarray(np.concatenate(views)), torch.tensor(labels)


def train_tiny_checkpoint(root: Path, steps: int = 200, seed: int = 0) -> Path:
    """A trained ``slowfast_tiny`` (time-difference Fast input) saved as our checkpoint."""
    torch.manual_seed(seed)
    model = slowfast_model.create_model(
        "slowfast_tiny", alpha=2, num_classes=len(CLASSES), fast_input="time_diff"
    )
    state = TrainingState(
        model=model.state_dict(),
        model_config=model.config.to_dict(),
        clip_spec=SPEC,
        classes=CLASSES,
        job_config={"model": {"preset": "slowfast_tiny"}},
    )
    untrained = save_state(state, root / "untrained")
    predictor = load_predictor(ModelSource(str(untrained)))
    fast, labels = _training_views(synth_videos(root / "train", per_class=10, seed=seed + 1))
    inputs = predictor.inputs.inputs({"fast": fast})
    net = predictor.model.train()
    optimiser = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, 0.1, total_steps=steps)
    draw = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        batch = torch.randperm(len(labels), generator=draw)[:16]
        loss = torch.nn.functional.cross_entropy(net([x[batch] for x in inputs]), labels[batch])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
    state.model = {k: v.detach().clone() for k, v in net.eval().state_dict().items()}
    return save_state(state, root / "ckpt")
