"""The README's main command (``make demo``): the whole system end to end on one machine.

1. generate SynthMotion (real H.264 videos; half of the classes differ only by motion that a
   stride-8 sampling aliases away) and ingest it with Ray Data;
2. train SlowFast (the paper's RGB Fast pathway) and a Slow-only baseline with Ray Train on a
   local Ray, same data and budget;
3. evaluate both with the 10x3-view protocol as Ray Data batch inference;
4. with ``--sweep-epochs N``, a small Ray Tune ablation (the three fusions and Slow-only);
5. log everything to the local MLflow store and print the comparison table.

The demo's sizes are typed replacements of the configs ``jobs/train.yaml`` and
``jobs/tune.yaml`` load to (:func:`demo_train_job`, :func:`demo_sweep`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pipelines.ingest.config import ReencodeConfig
from pipelines.synth.ceilings import Ceiling, ceiling
from pipelines.synth.dataset import SynthDataset, ensure_synth_dataset
from raysf import console, runtime
from raysf.clip_spec import ClipSpec
from raysf.config import with_overrides
from training.config import ModelConfig, TrainJobConfig
from training.run.trainer import run_training
from training.tune.config import SpaceConfig, TuneJobConfig
from training.tune.report import format_table
from training.tune.sweep import run_sweep

DEMO_ROOT = Path("demo_output")

#: Sizes for 2 CPUs: 6 classes x 120 videos of 64 frames (an RGB network needs about this many
#: to learn SynthMotion: docs/results.md, "The third limit: data size"). The sampling (T=4,
#: tau=8, alpha=4) puts the Slow stride on a multiple of SynthMotion's fast periods (4 and 8).
DEMO_DATA = SynthDataset(
    classes=6,
    videos_per_class=120,
    frames=64,
    clip=ClipSpec(slow_frames=4, tau=8, alpha=4, num_val_clips=1, num_test_clips=10),
)

#: ``--train-profile``: the demo's videos through ingest's training re-encode (fast-decode x264,
#: CRF 26, non-reference B-frames) at the demo's largest short side, every frame kept
#: (SynthMotion's motion periods are in native frames), a keyframe per demo window (32 frames).
DEMO_TRAIN_PROFILE = ReencodeConfig(profile="train", short_side=64, fps=None, gop=32)

#: The paper's comparison: SlowFast with an RGB Fast pathway against Slow-only. Both drop the
#: stems' max-pool, so res2 keeps a 24x24 map of a 48-pixel crop (``stem_pool: false``; with it
#: the RGB network stops at val 0.60: docs/results.md, rows 44-52).
MODELS = {
    "SlowFast": ModelConfig(
        preset="slowfast_tiny",
        overrides={"beta_inv": 4, "fast_input": "rgb", "stem_pool": False},
    ),
    "Slow-only": ModelConfig(preset="slow_tiny", overrides={"stem_pool": False}),
}


@dataclass(frozen=True)
class DemoOptions:
    """``epochs``/``videos_per_class``: override the demo's; ``sweep_epochs``: epochs per
    trial of the ablation sweep (0 skips it); ``train_profile``: ingest with
    :data:`DEMO_TRAIN_PROFILE` (into ``<root>/synthmotion-train-profile``); ``data_seed``:
    SynthMotion's seed (another one checks the recipe on videos it was not tuned on; its own
    folder ``<root>/synthmotion-seed<N>``)."""

    epochs: int | None = None
    videos_per_class: int | None = None
    sweep_epochs: int = 0
    root: Path = DEMO_ROOT
    train_profile: bool = False
    data_seed: int = 0


#: ``--smoke-test``: every step of the demo at the smallest size, in its own folder.
SMOKE_OPTIONS = DemoOptions(
    epochs=1, videos_per_class=6, sweep_epochs=1, root=DEMO_ROOT / "smoke" / "demo"
)


def demo_train_job(base: TrainJobConfig, dataset: str, epochs: int | None = None):
    """The demo's training recipe on ``base``: tiny nets, 48-pixel crops normalised per clip,
    batch 16, 15 epochs."""
    clip = replace(
        base.data.clip,
        tau=8,
        crop_size=48,
        short_side_range=(56, 64),
        test_short_side=56,
        normalise="clip",
    )
    job = replace(
        base,
        data=replace(
            base.data,
            dataset=dataset,
            clip=clip,
            decode=replace(base.data.decode, batch_size=8),
            shuffle_buffer=32,
        ),
        train=replace(base.train, epochs=epochs or 15, batch_size=16),
        optim=replace(base.optim, base_lr=0.4, warmup_epochs=1.0, weight_decay=5e-5),
        checkpoint=replace(base.checkpoint, keep=1),
        mlflow=replace(base.mlflow, experiment="demo"),
        resume=False,
    )
    return with_overrides(job, source="demo")


def demo_sweep(tune: TuneJobConfig, dataset: str, epochs: int, root: Path) -> TuneJobConfig:
    """The demo's ablation: the three fusions (alpha 4, beta 1/4, the RGB Fast input, the
    demo's stems without max-pool) and the Slow-only baseline, ``epochs`` each, no early
    stopping (every row trains the same epochs, or the table would compare 1-epoch against
    4-epoch results)."""
    base = demo_train_job(tune.train, dataset, epochs)
    model = replace(base.model, overrides={**base.model.overrides, "stem_pool": False})
    base = replace(base, model=model, eval=replace(base.eval, after_training=False))
    cfg = replace(
        tune,
        train=base,
        space=SpaceConfig(
            alpha=[4],
            beta_inv=[4],
            fusion=["time_to_channel", "time_strided_sampling", "time_strided_conv"],
            fast_input=["rgb"],
            slow_only=True,
        ),
        search=replace(tune.search, asha=replace(tune.search.asha, enabled=False)),
        sweep=replace(
            tune.sweep,
            name="demo-ablation",
            storage_path=str((root / "tune").absolute()),
            resume=False,
        ),
    )
    return with_overrides(cfg, source="demo")


def demo_data(options: DemoOptions) -> tuple[SynthDataset, Path]:
    """The demo's SynthMotion set and the folder it is generated and ingested into."""
    data = replace(DEMO_DATA, seed=options.data_seed)
    if options.videos_per_class:
        data = replace(data, videos_per_class=options.videos_per_class)
    name = "synthmotion" + (f"-seed{options.data_seed}" if options.data_seed else "")
    if options.train_profile:
        return replace(data, reencode=DEMO_TRAIN_PROFILE), options.root / f"{name}-train-profile"
    return data, options.root / name


def run_demo(train: TrainJobConfig, tune: TuneJobConfig, options: DemoOptions) -> list[dict]:
    """The demo's steps (module docstring); returns the rows of its comparison table."""
    # One local Ray for every step, with enough logical CPUs for a Tune trial's driver, its
    # training worker and a decode task (the ingest and the trainers reuse it).
    runtime.init_ray(num_cpus=runtime.local_cpus(4))
    data, folder = demo_data(options)
    profile = " (training re-encode profile)" if options.train_profile else ""
    console.line(
        f"[demo] 1/4 SynthMotion: {data.classes} classes x {data.videos_per_class} videos of "
        f"{data.frames} frames, ingested with Ray Data{profile}"
    )
    dataset = ensure_synth_dataset(folder, data)
    console.line("[demo] 2/4 SlowFast and Slow-only: Ray Train, then the test views (Ray Data)")
    classes = runtime.read_manifest(dataset).classes
    rows = [
        train_row(label, model, train, dataset, options, len(classes))
        for label, model in MODELS.items()
    ]
    if options.sweep_epochs:
        console.line(
            f"[demo] 3/4 ablation sweep (Ray Tune, {options.sweep_epochs} epochs per trial): "
            "the fusion types and the Slow-only baseline"
        )
        sweep = demo_sweep(tune, dataset, options.sweep_epochs, options.root)
        outcome = run_sweep(sweep, source="demo")
        console.line("\n" + format_table(outcome.rows))
    else:
        console.line(
            "[demo] 3/4 ablation sweep skipped (--sweep-epochs 4 runs the fusions and Slow-only "
            "as Ray Tune trials; the measured ablations: raysf tune jobs/ablations/fusion.yaml)"
        )
    console.line("[demo] 4/4 SlowFast against Slow-only, same data and budget:")
    print_table(rows, classes)
    return rows


def train_row(
    label: str,
    model: ModelConfig,
    base: TrainJobConfig,
    dataset: str,
    options: DemoOptions,
    num_classes: int,
    overrides: Sequence[str] = (),
) -> dict[str, Any]:
    """Train ``model`` with the demo's recipe on ``dataset`` (Ray Train), test it (the test
    views) and return its row of the comparison table; ``overrides``: dotted ``key=value``
    changes of the job, applied last."""
    job = demo_train_job(base, dataset, options.epochs)
    name = f"demo-{label.lower()}"
    job = replace(
        job,
        model=model,
        storage=replace(
            job.storage, path=str((options.root / "ray_results").absolute()), name=name
        ),
        mlflow=replace(job.mlflow, run_name=name),
    )
    job = with_overrides(job, list(overrides), source="demo")
    outcome = run_training(job)
    resolved = job.model.resolve(num_classes=num_classes)
    tau = job.data.clip.tau or resolved.default_tau
    # The finest sampling the network sees: the Fast pathway's, or the Slow one's alone.
    stride = tau if resolved.pathways == "slow_only" else max(1, tau // resolved.alpha)
    test = outcome.test_metrics or {}
    return {
        "model": label,
        "preset": job.model.preset,
        "gflops": outcome.model_info.gflops,
        "params": outcome.model_info.params,
        "val_top1": outcome.metrics.get("val_top1"),
        "test_top1": test.get("test_top1"),
        "stride": stride,
        "class_top1": {int(k.rsplit("_", 1)[1]): v for k, v in test.items() if "_class_" in k},
        "mlflow_run_id": outcome.mlflow_run_id,
        "tracking_uri": outcome.tracking_uri,
    }


def print_class_table(rows: list[dict], classes: tuple[str, ...]) -> None:
    """Each model's test top-1 per class beside the best its finest sampling allows in principle
    (:mod:`pipelines.synth.ceilings`); ``*`` marks a class that sampling cannot tell from
    ``still`` (best mean accuracy 1 / the size of that group)."""
    ceilings = [ceiling(classes, r["stride"]) for r in rows]
    titles = [f"{r['model']} (stride {r['stride']})" for r in rows]
    lines = ["", "Test top-1 per class / the best each sampling allows:"]
    lines.append(f"{'class':<14}" + "".join(f"{t:>24}" for t in titles))
    for k, name in enumerate(classes):
        cells = [
            _class_cell(r["class_top1"].get(k), c, name)
            for r, c in zip(rows, ceilings, strict=True)
        ]
        lines.append(f"{name:<14}" + "".join(f"{cell:>24}" for cell in cells))
    totals = [f"{r['test_top1']:.2f} / {c.top1:.2f} " for r, c in zip(rows, ceilings, strict=True)]
    lines.append(f"{'top-1':<14}" + "".join(f"{t:>24}" for t in totals))
    lines.append("(* cannot be told from still at that stride)")
    console.line("\n".join(lines))


def _class_cell(got: float | None, limit: Ceiling, name: str) -> str:
    mark = "*" if name in limit.blind and len(limit.blind) > 1 else " "
    return f"{'-' if got is None else f'{got:.2f}'} / {limit.class_ceiling(name):.2f}{mark}"


def print_table(rows: list[dict], classes: tuple[str, ...] | None = None) -> None:
    """The models' table, their per-class table (:func:`print_class_table`, when ``classes``
    is given), then where the MLflow runs are."""
    header = f"{'model':<10} {'GFLOPs':>8} {'params':>9} {'val top-1':>10} {'test top-1':>11}"
    lines = ["", header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r['model']:<10} {r['gflops']:>8.4f} {r['params']:>9,d} "
            f"{r['val_top1']:>10.3f} {r['test_top1']:>11.3f}"
        )
    console.line("\n".join(lines))
    if classes:
        print_class_table(rows, classes)
    uri = rows[0]["tracking_uri"]
    if uri:
        console.line(
            "\n".join(
                [
                    "",
                    f"MLflow runs (curves, confusion matrices, the sweep's table and plot) are "
                    f"in {uri}:",
                    f"  .venv/bin/mlflow ui --backend-store-uri {uri} --port 5000",
                    "and open http://127.0.0.1:5000 (experiment 'demo').",
                ]
            )
        )
