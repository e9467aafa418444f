"""SynthMotion: a small synthetic action dataset of real encoded videos.

- :mod:`~pipelines.synth.dataset` — a SynthMotion set generated and ingested once;
- :mod:`~pipelines.synth.generate` — the videos in the Kinetics layout, with a listing;
- :mod:`~pipelines.synth.render` — one video's frames and H.264 bytes;
- :mod:`~pipelines.synth.ceilings` — which classes a sampling stride can tell apart, and the
  top-1 it allows;
- :mod:`~pipelines.synth.spec` — the classes and the random specification of one video.

Layers, top to bottom (checked by make lint): dataset > generate > render | ceilings > spec
"""
