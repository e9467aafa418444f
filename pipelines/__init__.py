"""The video data pipeline: two pipelines (ingest time, load time) over one decode core.

    videos ─▶ ingest/ ─▶ sharded Parquet clip records + manifest.json ─▶ loader/ ─▶ training
                 │                                                           │
                 └──────────── views ◀── decode/ (frame-exact decoding) ─────┘

- :mod:`pipelines.ingest` — a video listing to clip records and rejects, with Ray Data;
- :mod:`pipelines.loader` — a split's clip records to a Ray Dataset of decoded, augmented clips;
- :mod:`pipelines.synth` — SynthMotion: generated videos with learnable classes, and a
  generated + ingested dataset of them (the smoke tests', the demo's and the benchmarks' data);
- :mod:`pipelines.views` — the views a network sees of a clip (train crop and flip, test crops,
  the test views of a whole file), shared by ingest, the loader, evaluation and prediction;
- :mod:`pipelines.decode` — frame-accurate decoding and conversion (PyAV, libswscale);
- :mod:`pipelines.sampling` — pure index math of dual-rate (Slow/Fast) windows;
- :mod:`pipelines.transforms` — crop boxes, flips and normalisation;
- :mod:`pipelines.schema` — the Arrow schemas of the clip records and the rejects table.

Layers, top to bottom (checked by make lint): synth > ingest | loader > views > decode > sampling | transforms | schema

Nothing is imported here: importing one module does not pull PyAV or Ray into a process that
does not need them (the training workers normalise batches without either).
"""
