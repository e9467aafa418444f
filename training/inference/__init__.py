"""A trained network at work: evaluation, prediction and export.

- :mod:`~training.inference.predict` — top-5 for video files, folders and ingested datasets;
- :mod:`~training.inference.evaluate` — the paper's test-view protocol as Ray Data batch
  inference;
- :mod:`~training.inference.export` — TorchScript, ExportedProgram or ONNX with the clip spec.

Layers, top to bottom (checked by make lint): predict > evaluate | export
"""
