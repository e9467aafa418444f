"""Multigrid training (Wu et al., CVPR 2020): the shapes a run trains at and what the worker
needs to train them. No Ray here; the plan computes the schedule, the worker follows it.

- :mod:`training.multigrid.config` — the ``train.multigrid`` section (:class:`MultigridConfig`);
- :mod:`training.multigrid.schedule` — the shape schedule: epoch and step -> clip shape, batch,
  learning-rate factor (plain runs are a one-phase schedule);
- :mod:`training.multigrid.table` — the schedule as a printed table and as logged rows;
- :mod:`training.multigrid.short_cycle` — host batches grouped and device clips scaled for the
  steps of a short cycle;
- :mod:`training.multigrid.batchnorm` — sub-batch BatchNorm (statistics over groups of clips);
- :mod:`training.multigrid.compiled` — torch.compile's recompile limit sized for the schedule.

Layers, top to bottom (checked by make lint): table | short_cycle > schedule > config | batchnorm | compiled
"""
