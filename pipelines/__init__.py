"""The video data pipeline, in the order data flows through it.

- :mod:`pipelines.synth`, :mod:`pipelines.synth_dataset` — SynthMotion: generated videos with
  learnable classes, and a generated + ingested dataset of them;
- :mod:`pipelines.sources` — a video listing (Kinetics CSVs, ``<path> <label>`` lists, folders);
- :mod:`pipelines.probe`, :mod:`pipelines.segment`, :mod:`pipelines.clip_records` — one video
  to its clip records or a reject;
- :mod:`pipelines.shards`, :mod:`pipelines.ingest` — Ray Data ingest into sharded Parquet;
- :mod:`pipelines.sampling` (index math), :mod:`pipelines.frame_table`,
  :mod:`pipelines.decode`, :mod:`pipelines.transforms`, :mod:`pipelines.views` — decoding and
  cutting the views of a clip;
- :mod:`pipelines.record_source`, :mod:`pipelines.loader` — a split's clip records in epoch
  order, then a Ray Dataset of decoded, augmented clips.

Nothing is imported here: importing one module does not pull PyAV or Ray into a process that
does not need them (the training workers normalise batches without either).
"""
