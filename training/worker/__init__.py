"""The per-worker side of a Ray Train run.

- :mod:`~training.worker.loop` — :func:`~training.worker.loop.train_func`: build, resume,
  epoch, report and checkpoint;
- :mod:`~training.worker.phases` — the shape schedule on a worker: each epoch's dataset,
  batch, feed, learning rate and BatchNorm groups, and what checkpoints record of it;
- :mod:`~training.worker.steps` — one epoch's math (steps, validation, sums across ranks);
- :mod:`~training.worker.reporting` — rank 0's progress events, and the driver's display of them;
- :mod:`~training.worker.val_cache` — validation batches kept in memory after the first pass.

Layers, top to bottom (checked by make lint): loop > phases > steps | reporting | val_cache
"""
