"""Frame-accurate decoding: the core that ingest, the loader and prediction share.

- :mod:`~pipelines.decode.frames` — the frames at given presentation indices (seek, packets,
  skipped non-reference frames, threads), as RGB arrays or 4:2:0 planes;
- :mod:`~pipelines.decode.frame_table` — a video's presentation timestamps and keyframes, by
  demuxing only;
- :mod:`~pipelines.decode.h264` — which H.264 packets no other frame references (NAL headers);
- :mod:`~pipelines.decode.planes` — a crop's source region copied out of the decoder's planes;
- :mod:`~pipelines.decode.orientation` — frames turned upright by their display matrix;
- :mod:`~pipelines.decode.convert` — decoded frame to RGB in libswscale (whole frame or a box).

Layers, top to bottom (checked by make lint): frames > planes | h264 | frame_table | orientation > convert
"""
