"""How a model runs on its device, and how batches reach it.

- :mod:`~training.device.inputs` — uint8 batches to the normalised ``[slow, fast]`` tensors a
  model takes, and the feed that copies the next batch on a side CUDA stream;
- :mod:`~training.device.yuv_to_rgb` — training views in plane form to normalised RGB, on the
  device;
- :mod:`~training.device.settings` — precision, memory format and compilation, resolved once.

Layers, top to bottom (checked by make lint): inputs > yuv_to_rgb | settings
"""
