"""SlowFast networks in plain PyTorch (no Ray).

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
