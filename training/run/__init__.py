"""One training run from the driver: checks, MLflow run, datasets, ``TorchTrainer``, artifacts.

- :mod:`~training.run.trainer` — :func:`~training.run.trainer.run_training`;
- :mod:`~training.run.placement` — can the cluster ever hold the worker group;
- :mod:`~training.run.callbacks` — Ray Train callbacks (run in the Train controller).

Layers, top to bottom (checked by make lint): trainer > placement | callbacks
"""
