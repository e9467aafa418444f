"""Ray Tune ablation sweeps: :mod:`~training.tune.config` (``jobs/tune.yaml``),
:mod:`~training.tune.space` (points: configurations x seeds), :mod:`~training.tune.trial` (one
Ray Train run per trial), :mod:`~training.tune.results` (rows, and their aggregation over
seeds), :mod:`~training.tune.stats` (t intervals, paired differences),
:mod:`~training.tune.report` (tables, plots), :mod:`~training.tune.sweep` (the driver)."""
