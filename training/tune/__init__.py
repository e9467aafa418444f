"""Ray Tune ablation sweeps: :mod:`~training.tune.config` (``jobs/tune.yaml``),
:mod:`~training.tune.space` (points), :mod:`~training.tune.trial` (one Ray Train run per
trial), :mod:`~training.tune.results` (rows), :mod:`~training.tune.report` (tables, plot),
:mod:`~training.tune.sweep` (the driver)."""
