"""Ingest: a video collection to self-contained clip records (sharded Parquet) with Ray Data.

- :mod:`~pipelines.ingest.run` — the Ray Data job (:func:`~pipelines.ingest.run.run_ingest`);
- :mod:`~pipelines.ingest.leaks` — the same video in two splits, found from content hashes;
- :mod:`~pipelines.ingest.shards` — shard planning, commit markers, the manifest summed from them;
- :mod:`~pipelines.ingest.clips` — one video to its clip records or one reject row (no Ray);
- :mod:`~pipelines.ingest.config` — the typed ingest job (``jobs/ingest.yaml``);
- :mod:`~pipelines.ingest.probe` — probe a video and decide whether it can be ingested;
- :mod:`~pipelines.ingest.sources` — a listing (Kinetics CSVs, ``<path> <label>`` lists, folders);
- :mod:`~pipelines.ingest.kinetics_files` — a Kinetics row's file as downloads name it
  (``<id>_<start>_<end>.<ext>`` or ``<id>.<ext>``, any video extension);
- :mod:`~pipelines.ingest.segment` — whole GOPs remuxed, or re-encoded, into a self-contained MP4;
- :mod:`~pipelines.ingest.formats` — each input's ``<container>/<codec>``, how it was stored
  (copied or re-encoded), and the counts per format.

Layers, top to bottom (checked by make lint): run > leaks > shards > clips > formats > config | probe | sources > segment | kinetics_files
"""
