"""Video data pipeline: SynthMotion, ingest to clip records, frame-accurate decode, Ray loader.

The reading side is re-exported here; Ray is imported only when a dataset is built.
"""

from pipelines.decode import DecodeError, decode_clip, decode_frames, scaled_size
from pipelines.frame_table import FrameTable, read_frame_table
from pipelines.loader import build_clip_dataset, clip_nbytes, read_manifest
from pipelines.transforms import (
    KINETICS_MEAN,
    KINETICS_STD,
    center_crop,
    horizontal_flip,
    random_crop,
    random_horizontal_flip,
    random_short_side,
    spatial_crop,
    three_crops,
    to_model_inputs,
)

__all__ = [
    "KINETICS_MEAN",
    "KINETICS_STD",
    "DecodeError",
    "FrameTable",
    "build_clip_dataset",
    "center_crop",
    "clip_nbytes",
    "decode_clip",
    "decode_frames",
    "horizontal_flip",
    "random_crop",
    "random_horizontal_flip",
    "random_short_side",
    "read_frame_table",
    "read_manifest",
    "scaled_size",
    "spatial_crop",
    "three_crops",
    "to_model_inputs",
]
