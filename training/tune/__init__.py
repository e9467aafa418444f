"""Ray Tune ablation sweeps.

- :mod:`~training.tune.sweep` — the driver (:func:`~training.tune.sweep.run_sweep`);
- :mod:`~training.tune.trial` — one trial is one Ray Train run;
- :mod:`~training.tune.combine` — one seeded table from several sweeps' JSON files;
- :mod:`~training.tune.live_table` — the sweep's progress table on the console;
- :mod:`~training.tune.report` — tables (Markdown, CSV) and plots;
- :mod:`~training.tune.results` — rows, and their aggregation over seeds;
- :mod:`~training.tune.space` — points: configurations x seeds, each point's training job;
- :mod:`~training.tune.stats` — t intervals, paired differences;
- :mod:`~training.tune.config` — the typed sweep (``jobs/tune.yaml``).

Layers, top to bottom (checked by make lint): sweep > trial | combine | live_table | report > results > space | stats > config
"""
