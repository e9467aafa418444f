"""Training, evaluation and prediction of SlowFast networks on Ray: the library under the
entry points of :mod:`jobs`.

Layers inside, top to bottom (no module imports one above it):

- :mod:`training.demo`, :mod:`training.smoke` — the demo and ``--smoke-test`` settings;
- :mod:`training.tune` — Ray Tune ablation sweeps (config, space, trial, results, report);
- :mod:`training.trainer`, :mod:`training.predict` — a whole run; predictions;
- :mod:`training.evaluate` — the test-view protocol as Ray Data batch inference;
- :mod:`training.worker` — the Ray Train per-worker loop (build, resume, epoch, report);
- :mod:`training.plan` — what a run will do, worked out before Ray starts;
- :mod:`training.steps`, :mod:`training.artifacts`, :mod:`training.callbacks` — one epoch's
  math, MLflow artifacts, Ray Train callbacks;
- :mod:`training.config`, :mod:`training.checkpoints`, :mod:`training.tracking`,
  :mod:`training.inputs`, :mod:`training.device`, :mod:`training.schedule` — the typed job,
  the checkpoint format, MLflow, device-side feeding, device settings (precision, memory
  format, compile), the learning-rate recipe.
"""
