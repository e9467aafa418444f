"""Why RGB networks do not learn SynthMotion (issue 29, item 1): a controlled, in-process harness.

Trains the project's model (:func:`slowfast_model.create_model`, the demo's presets and
overrides) with the demo's recipe (SGD + Nesterov, lr 0.4 at batch 64 scaled to batch 8,
1 warm-up epoch, cosine, weight decay 5e-5 off the norm layers, 15 epochs, T=4 tau=8 alpha=4,
short side 56-64, 48-pixel crops, flips with the drift pair swapped) without Ray, on every frame
of a generated SynthMotion set decoded once at short side 64 (``--cache``): one run is 1-3
minutes on one core, so each hypothesis is one change to one command line, same data, same seed.

    python benchmarks/synth_rgb_bench.py --model sf_rgb               # the failure
    python benchmarks/synth_rgb_bench.py --model sf_td                # time differences learn
    python benchmarks/synth_rgb_bench.py --model tiny3d               # so does no plain 3D CNN
    python benchmarks/synth_rgb_bench.py --model tiny3d --norm clip   # ... until the clip's
                                                                      # global colour is removed
    python benchmarks/synth_rgb_bench.py --model tiny3d --variant greybase   # or the data's

``--variant greybase`` generates the same videos (same seeds, objects, motions, textures) with
one mid-grey base colour for every background instead of a random one per video. Each run
appends a JSON line (arguments, train top-1 on the augmented and on the clean centre views,
val top-1 per class, test top-1 over 10x3 views with ``--test``) to ``--out``. The figures are in
docs/results.md ("Why the RGB networks stay at chance").
"""

from __future__ import annotations

import argparse
import json
import pickle
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import slowfast_model
from training.device.inputs import CLIP_STD_FLOOR, standardise_clips
from training.schedule import lr_factor
from training.worker.steps import build_param_groups

NAMES = ("drift_right", "drift_left", "still", "vibrate", "vibrate_slow", "flicker")
FLIP = {0: 1, 1: 0}  # a flipped drift_right clip trains as drift_left
T, ALPHA, SHORT = 4, 4, 64
MODELS = {
    "sf_rgb": ("slowfast_tiny", {"beta_inv": 4, "fast_input": "rgb"}),
    "sf_td": ("slowfast_tiny", {"beta_inv": 4, "fast_input": "time_diff"}),
    "sf_gray": ("slowfast_tiny", {"beta_inv": 4, "fast_input": "gray"}),
    "slow": ("slow_tiny", {}),
}


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-seed", type=int, default=0, help="SynthMotion seed (the demo's: 0)")
    p.add_argument("--videos-per-class", type=int, default=40)
    p.add_argument("--variant", default="", choices=["", "greybase"])
    p.add_argument("--seed", type=int, default=0, help="model init and augmentation seed")
    p.add_argument("--model", default="sf_rgb", choices=[*MODELS, "tiny3d", "tiny3d_td"])
    p.add_argument("--overrides", default="{}", help="JSON model overrides")
    p.add_argument(
        "--no-stem-pool",
        action="store_true",
        help="the stems' max-pool removed (model option stem_pool: false)",
    )
    p.add_argument("--lr", type=float, default=0.4, help="base lr at batch 64")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--wd", type=float, default=5e-5)
    p.add_argument("--tau", type=int, default=8)
    p.add_argument("--crop", type=int, default=48)
    p.add_argument("--short", default="56,64")
    p.add_argument("--test-short", type=int, default=56)
    p.add_argument("--norm", default="kinetics", choices=["kinetics", "clip"])
    p.add_argument("--opt", default="sgd", choices=["sgd", "adamw"])
    p.add_argument("--test", action="store_true", help="also the 10x3-view test top-1")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cache", default="demo_output/synth_rgb_bench")
    p.add_argument("--out", default="benchmarks/results/synth_rgb_bench.jsonl")
    p.add_argument("--tag", default="")
    return p.parse_args(argv)


def load_frames(args) -> dict[str, list]:
    """``{split: [(frames uint8 (64, H, W, 3) at short side 64, label)]}``, cached."""
    name = f"seed{args.data_seed}_vpc{args.videos_per_class}{args.variant}"
    path = Path(args.cache) / f"{name}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    from pipelines.decode.frame_table import read_frame_table
    from pipelines.decode.frames import decode_frames
    from pipelines.synth import generate, render

    if args.variant == "greybase":
        original = render._background

        def grey(rng, width, height):  # same draws and waves, one mid-grey base colour
            img = original(rng, width, height)
            return img - img.mean((0, 1), keepdims=True) + 128.0

        render._background = grey  # render_frames looks it up in its module
    videos = generate.generate(
        Path(args.cache) / name, classes=6, videos_per_class=args.videos_per_class,
        seed=args.data_seed, frames=64,
    )  # fmt: skip
    data: dict[str, list] = {"train": [], "val": [], "test": []}
    for v in videos:
        content = Path(v.path).read_bytes()
        table = read_frame_table(content)
        frames = decode_frames(
            content, np.arange(table.num_frames), frame_pts=table.pts,
            keyframes=table.keyframes, short_side=SHORT, threads=1,
        )  # fmt: skip
        data[v.split].append((frames, NAMES.index(v.label)))
    path.write_bytes(pickle.dumps(data))
    return data


class Tiny3d(nn.Module):
    """The sanity model: three 3D convs (16, 32, 64 channels) + BN + ReLU, pool, linear; on
    the Fast frames (``diff``: on their time differences)."""

    def __init__(self, diff: bool) -> None:
        super().__init__()
        self.diff = diff
        layers, cin = [], 3
        for cout, kernel, stride in ((16, (3, 5, 5), (1, 2, 2)), (32, 3, 2), (64, 3, 2)):
            pad = tuple(k // 2 for k in kernel) if isinstance(kernel, tuple) else 1
            layers += [nn.Conv3d(cin, cout, kernel, stride, pad), nn.BatchNorm3d(cout), nn.ReLU()]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, len(NAMES))

    def forward(self, inputs):
        x = inputs[-1]
        if self.diff:
            x = torch.diff(x, dim=2, prepend=x[:, :, :1])
        return self.fc(self.features(x).mean((2, 3, 4)))


def build(args) -> nn.Module:
    if args.model.startswith("tiny3d"):
        return Tiny3d(diff=args.model == "tiny3d_td")
    preset, overrides = MODELS[args.model]
    overrides = {**overrides, **json.loads(args.overrides), "num_classes": len(NAMES)}
    if args.no_stem_pool:  # 2x instead of 4x spatial downsampling before res2
        overrides["stem_pool"] = False
    return slowfast_model.create_model(preset, **overrides)


class Views:
    """The demo's training view and its val/test views, from cached frames at short side 64."""

    def __init__(self, args, rng: np.random.Generator) -> None:
        self.args, self.rng = args, rng
        self.step = args.tau // ALPHA
        self.span = T * args.tau
        self.short = tuple(int(s) for s in args.short.split(","))
        self.mean = torch.full((1, 3, 1, 1, 1), 0.45)
        self.std = torch.full((1, 3, 1, 1, 1), 0.225)

    def scaled(self, frames: np.ndarray, short: int) -> torch.Tensor:
        """uint8 (t, H, W, 3) -> float (3, t, h, w) with short side ``short``."""
        x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
        h, w = x.shape[-2:]
        if short != min(h, w):
            f = short / min(h, w)
            size = (short, max(short, round(w * f / 2) * 2)) if h <= w else (
                max(short, round(h * f / 2) * 2), short)  # fmt: skip
            x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        return x.permute(1, 0, 2, 3)

    def train(self, frames: np.ndarray, label: int) -> tuple[torch.Tensor, int]:
        rng, crop = self.rng, self.args.crop
        start = int(rng.integers(0, len(frames) - self.span + 1))
        x = self.scaled(frames[start + self.step * np.arange(ALPHA * T)], int(rng.integers(
            self.short[0], self.short[1] + 1)))  # fmt: skip
        y0 = int(rng.integers(0, x.shape[-2] - crop + 1))
        x0 = int(rng.integers(0, x.shape[-1] - crop + 1))
        x = x[..., y0 : y0 + crop, x0 : x0 + crop]
        if rng.random() < 0.5:
            x, label = x.flip(-1), FLIP.get(label, label)
        return x, label

    def test(self, frames: np.ndarray, clips: int, crops: int) -> torch.Tensor:
        """``clips`` uniform windows x ``crops`` crops along the long side (1: the centre)."""
        delta, crop = len(frames) - self.span, self.args.crop
        starts = [delta // 2] if clips == 1 else np.floor(
            np.arange(clips) * delta / (clips - 1) + 0.5).astype(int)  # fmt: skip
        views = []
        for s in starts:
            x = self.scaled(frames[s + self.step * np.arange(ALPHA * T)], self.args.test_short)
            h, w = x.shape[-2:]
            for k in range(crops):
                y0, x0 = (h - crop) // 2, (w - crop) // 2
                if crops == 3:
                    y0, x0 = ((0, y0, h - crop)[k], x0) if h > w else (y0, (0, x0, w - crop)[k])
                views.append(x[..., y0 : y0 + crop, x0 : x0 + crop])
        return torch.stack(views)

    def inputs(self, fast: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, alpha*T, h, w) in 0..255 -> normalised ``[slow, fast]``."""
        fast = (fast / 255.0 - self.mean) / self.std
        if self.args.norm == "clip":  # the loader's normalise: clip (training/device/inputs.py)
            fast = standardise_clips(fast, CLIP_STD_FLOOR / self.std)
        return [fast[:, :, ::ALPHA], fast]


@torch.no_grad()
def evaluate(model, views: Views, split: list, clips: int = 1, crops: int = 1):
    """Top-1 and per-class top-1 (softmax averaged over the views of a video)."""
    model.eval()
    hits = np.zeros((len(NAMES), 2))
    for frames, label in split:
        prob = model(views.inputs(views.test(frames, clips, crops))).softmax(1).mean(0)
        hits[label] += (int(prob.argmax()) == label, 1)
    model.train()
    return hits[:, 0].sum() / hits[:, 1].sum(), hits[:, 0] / np.maximum(hits[:, 1], 1)


def train(args, model, views: Views, data: dict) -> list[tuple]:
    """The demo's recipe; returns per epoch (loss, augmented train top-1, val top-1)."""
    peak = args.lr * args.batch / 64
    groups = build_param_groups(model, args.wd, 0.0)
    opt = (
        torch.optim.SGD(groups, lr=peak, momentum=0.9, nesterov=True)
        if args.opt == "sgd"
        else torch.optim.AdamW(groups, lr=peak)
    )
    steps = len(data["train"]) // args.batch

    def factor(step: int) -> float:
        e = step / steps
        return lr_factor(e, epochs=args.epochs, warmup_epochs=args.warmup, warmup_start_factor=0.1)

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    history, t0 = [], time.time()
    for epoch in range(args.epochs):
        order = views.rng.permutation(len(data["train"]))
        loss_sum = hits = 0.0
        for b in range(steps):
            batch = [views.train(*data["train"][i]) for i in order[b * args.batch :][: args.batch]]
            labels = torch.tensor([y for _, y in batch])
            logits = model(views.inputs(torch.stack([x for x, _ in batch])))
            loss = F.cross_entropy(logits, labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(labels)
            hits += (logits.argmax(1) == labels).sum().item()
        n = steps * args.batch
        val, _ = evaluate(model, views, data["val"])
        history.append((round(loss_sum / n, 3), round(hits / n, 3), round(val, 3)))
        print(f"epoch {epoch} loss {loss_sum / n:.3f} train {hits / n:.3f} val {val:.3f} "
              f"{time.time() - t0:.0f}s", flush=True)  # fmt: skip
    return history


def main(argv=None) -> dict:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data = load_frames(args)
    views = Views(args, np.random.default_rng(args.seed))
    model = build(args)
    t0 = time.time()
    history = train(args, model, views, data)
    clean, _ = evaluate(model, views, data["train"])
    val, val_per = evaluate(model, views, data["val"])
    result = {
        "tag": args.tag, "args": vars(args), "history": history,
        "train_aug_top1": history[-1][1], "train_top1": round(clean, 3), "val_top1": round(val, 3),
        "val_per_class": [round(v, 2) for v in val_per], "seconds": round(time.time() - t0),
    }  # fmt: skip
    if args.test:
        test, test_per = evaluate(model, views, data["test"], 10, 3)
        result.update(test_top1=round(test, 3), test_per_class=[round(v, 2) for v in test_per])
    print(json.dumps({k: v for k, v in result.items() if k not in ("args", "history")}))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a") as f:
        f.write(json.dumps(result) + "\n")
    return result


if __name__ == "__main__":
    main()
