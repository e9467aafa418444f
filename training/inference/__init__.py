"""A trained network at work: evaluation, prediction and export.

- :mod:`~training.inference.predict` — top-5 for video files, folders and ingested datasets;
- :mod:`~training.inference.evaluate` — the paper's test-view protocol as Ray Data batch
  inference;
- :mod:`~training.inference.export` — TorchScript, ExportedProgram or ONNX with the clip spec;
- :mod:`~training.inference.timeline` — per-window top-k over a long video (``predict
  --timeline`` and the service's ``/v1/timeline`` answer alike).

Layers, top to bottom (checked by make lint): predict > timeline | evaluate | export
"""
