"""The loader: a split's clip records to a Ray Dataset of decoded, augmented clips.

- :mod:`~pipelines.loader.dataset` — records to decoded rows
  (:func:`~pipelines.loader.dataset.build_clip_dataset`);
- :mod:`~pipelines.loader.options` — where and how the decode tasks run, and the form of the
  training views (:class:`~pipelines.loader.options.DecodeOptions`, the YAML section
  ``data.decode``);
- :mod:`~pipelines.loader.blocks` — a split's records in epoch order, cut into decode-sized
  blocks;
- :mod:`~pipelines.loader.decode_errors` — records that fail to decode while streaming:
  dropped, counted, reported.

Layers, top to bottom (checked by make lint): dataset > blocks | decode_errors | options
"""
