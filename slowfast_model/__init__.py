"""SlowFast networks in plain PyTorch (no Ray).

Public API: `SlowFastConfig`, `StageSpec`, `create_model`, `build_model`, `get_config`,
`list_models`, `sampling`, `count_flops`, `example_inputs`, `convert_state_dict`,
`export_state_dict`, `infer_config_from_state_dict`, `load_checkpoint_file`, `load_pretrained`.
"""

from slowfast_model.config import SlowFastConfig, StageSpec
from slowfast_model.model import SlowFast, build_model
from slowfast_model.presets import Sampling, create_model, get_config, list_models, sampling

__all__ = [
    "Sampling",
    "SlowFast",
    "SlowFastConfig",
    "StageSpec",
    "build_model",
    "create_model",
    "get_config",
    "list_models",
    "sampling",
]
