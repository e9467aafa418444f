"""Training, evaluation and prediction of SlowFast networks on Ray: the library under the
entry points of :mod:`jobs`.

- :mod:`training.recipes` — the demo's and ``--smoke-test``'s settings (typed replacements);
- :mod:`training.tune` — Ray Tune ablation sweeps;
- :mod:`training.run` — one Ray Train run from the driver (checks, datasets, artifacts);
- :mod:`training.serving` — ``raysf serve``: the network behind HTTP on Ray Serve;
- :mod:`training.inference` — the test-view protocol, predictions, timelines, exported models;
- :mod:`training.worker` — the Ray Train per-worker loop and one epoch's math;
- :mod:`training.plan` — what a run will do, worked out before Ray starts;
- :mod:`training.artifacts` — MLflow artifacts of a run, and a model built from a checkpoint;
- :mod:`training.config` — the typed training job (``jobs/train.yaml``);
- :mod:`training.checkpoints` — the checkpoint format;
- :mod:`training.schedule` — the learning-rate recipe;
- :mod:`training.tracking` — MLflow: tracking URI, runs, params, metrics;
- :mod:`training.device` — device settings and device-side feeding;
- :mod:`training.multigrid` — the shape schedule (plain or multigrid) and what training
  at several shapes needs (sub-batch BN, short cycles, the recompile limit).

Layers, top to bottom (checked by make lint): recipes > tune > run | serving > inference | worker > plan | artifacts > config | checkpoints | schedule > tracking | device | multigrid
"""
