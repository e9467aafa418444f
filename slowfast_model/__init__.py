"""SlowFast networks in plain PyTorch (no Ray).

- :mod:`~slowfast_model.checkpoints` — load, convert and export weights (ours, PyTorchVideo,
  PySlowFast, mmaction2); :mod:`~slowfast_model.checkpoint_keys` — their key translation;
- :mod:`~slowfast_model.presets` — named networks (``slowfast_8x8_r50``, ...);
- :mod:`~slowfast_model.flops` — FLOP counts and example inputs;
- :mod:`~slowfast_model.model` — the two pathways, stage by stage;
- :mod:`~slowfast_model.fusion`, :mod:`~slowfast_model.layers` — lateral connections; stems,
  blocks and heads;
- :mod:`~slowfast_model.fast_inputs` — what the Fast pathway sees (RGB, gray, time difference,
  half resolution, optical flow), made inside the network;
- :mod:`~slowfast_model.flow` — dense optical flow in torch (coarse-to-fine Lucas-Kanade);
- :mod:`~slowfast_model.config` — one frozen, validated :class:`SlowFastConfig`.

Layers, top to bottom (checked by make lint): checkpoints > presets | flops | checkpoint_keys > model > fusion | layers | fast_inputs > config | flow

Public API: `SlowFastConfig`, `StageSpec`, `create_model`, `build_model`, `get_config`,
`list_models`, `sampling`, `count_flops`, `example_inputs`, `convert_state_dict`,
`export_state_dict`, `infer_config_from_state_dict`, `load_checkpoint_file`, `load_pretrained`.
"""

from slowfast_model.checkpoints import (
    build_from_checkpoint,
    convert_state_dict,
    export_state_dict,
    infer_config_from_state_dict,
    load_checkpoint_file,
    load_pretrained,
)
from slowfast_model.config import SlowFastConfig, StageSpec
from slowfast_model.flops import count_flops, example_inputs
from slowfast_model.model import SlowFast, build_model
from slowfast_model.presets import Sampling, create_model, get_config, list_models, sampling

__all__ = [
    "Sampling",
    "SlowFast",
    "SlowFastConfig",
    "StageSpec",
    "build_from_checkpoint",
    "build_model",
    "convert_state_dict",
    "count_flops",
    "create_model",
    "example_inputs",
    "export_state_dict",
    "get_config",
    "infer_config_from_state_dict",
    "list_models",
    "load_checkpoint_file",
    "load_pretrained",
    "sampling",
]
