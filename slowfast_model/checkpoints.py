"""Checkpoint conversion between this package and PyTorchVideo, PySlowFast and mmaction2.

Key names are translated by `their_key(our_key, source, pathways)` (in
`slowfast_model.checkpoint_keys`, which shows the layouts), a pure function of our module path.
Converting a foreign state dict therefore needs our key list, which comes from the config:
`infer_config_from_state_dict` reads depth, width, beta, fusion kind, fusion kernel, lateral BN,
non-local blocks, res4 temporal blocks, classes and the Fast input's channels (1 gray, 2 flow)
from weight shapes. What weights cannot tell (alpha for conv/sampling laterals, T, tau, dropout,
rgb vs time_diff vs half_res, fast_spatial_scale) comes from a base config or preset.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

import torch

from slowfast_model.checkpoint_keys import SOURCES, check_source, their_key
from slowfast_model.config import STAGE_DEPTHS, SlowFastConfig, nonlocal_positions
from slowfast_model.model import SlowFast, build_model
from slowfast_model.presets import get_config

__all__ = [
    "SOURCES",
    "build_from_checkpoint",
    "convert_state_dict",
    "detect_source",
    "export_state_dict",
    "infer_config_from_state_dict",
    "load_checkpoint_file",
    "load_pretrained",
    "their_key",
    "unwrap_state_dict",
]


# ---------------------------------------------------------------------- loading files
def unwrap_state_dict(obj: Mapping[str, object]) -> dict[str, torch.Tensor]:
    """Strip `model_state` / `state_dict` / `model` wrappers and DDP `module.` prefixes."""
    for wrapper in ("model_state", "state_dict", "model"):
        if isinstance(obj, Mapping) and wrapper in obj and isinstance(obj[wrapper], Mapping):
            obj = obj[wrapper]
    if not isinstance(obj, Mapping):
        raise ValueError(f"state_dict: expected a mapping, got {type(obj).__name__}")
    out = {}
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            continue
        out[key[len("module.") :] if key.startswith("module.") else key] = value
    return out


def detect_source(state_dict: Mapping[str, torch.Tensor]) -> str:
    """Guess the layout of a state dict: 'ours', 'pytorchvideo', 'pyslowfast' or 'mmaction2'."""
    keys = list(state_dict)
    if any(k.startswith(("slow.stem.", "fast.stem.")) for k in keys):
        return "ours"
    if any(k.startswith("s1.pathway0_stem.") for k in keys):
        return "pyslowfast"
    if any(k.startswith("backbone.") for k in keys):
        return "mmaction2"
    if any(k.startswith("blocks.0.") for k in keys):
        return "pytorchvideo"
    raise ValueError(f"state_dict: unrecognised key layout (first keys: {keys[:3]})")


def load_checkpoint_file(path: str | os.PathLike, source: str | None = None) -> dict:
    """Read a .pyth / .pt / .pth checkpoint (weights_only) and return OUR state dict.

    `source` None detects the layout from the key names.
    """
    path = os.fspath(path)
    if not path.endswith((".pyth", ".pt", ".pth")):
        raise ValueError(f"path={path!r}: expected a .pyth, .pt or .pth file")
    if not os.path.isfile(path):
        raise ValueError(f"path={path!r}: no such file")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - re-raised with the path
        raise ValueError(f"path={path!r}: cannot load checkpoint: {exc}") from exc
    state = unwrap_state_dict(raw)
    source = source or detect_source(state)
    if source == "ours":
        return state
    return convert_state_dict(state, source)


# ---------------------------------------------------------------------- inference
_Shape = tuple[int, ...]


def _shape(state: Mapping[str, torch.Tensor], key: str | None) -> tuple[int, ...] | None:
    if key is None or key not in state:
        return None
    return tuple(state[key].shape)


def infer_config_from_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    source: str,
    base: SlowFastConfig | str | None = None,
) -> SlowFastConfig:
    """Config whose architecture matches `state_dict` (in `source` layout, or 'ours').

    Fields not visible in weights (alpha unless time_to_channel, T, tau, dropout, rgb vs
    time_diff vs half_res, fast_spatial_scale) come from `base` (a config or preset name;
    default `SlowFastConfig()`).
    """
    if isinstance(base, str):
        base = get_config(base)
    base = base or SlowFastConfig()
    state = unwrap_state_dict(state_dict)
    if source != "ours":
        check_source(source)
    pathways, slow_stem, fast_stem = _infer_pathways(state, source)
    shape = _shape_reader(state, source, pathways)
    fields = _infer_res4(shape, "fast" if pathways == "fast_only" else "slow")
    head = shape("head.weight")
    if head is None:
        raise ValueError("state_dict: classifier weight not found")
    fields.update(pathways=pathways, num_classes=head[0], fusion="none")
    if pathways == "fast_only":
        fields["width"] = fast_stem[0] * base.beta_inv
        fields["fast_input"] = _fast_input(fast_stem[1], base)
        fields["in_channels"] = 3 if fast_stem[1] in (1, 2) else fast_stem[1]
    else:
        fields["width"] = slow_stem[0]
        fields["in_channels"] = slow_stem[1]
    if pathways == "slowfast":
        fields.update(_infer_fusion(shape, slow_stem, fast_stem, base))
    return base.replace(**fields)


def _shape_reader(
    state: Mapping[str, torch.Tensor], source: str, pathways: str
) -> Callable[[str], _Shape | None]:
    """Look up the shape of a weight by OUR key name in `state` (in `source` layout)."""

    def shape(our: str) -> _Shape | None:
        return _shape(state, our if source == "ours" else their_key(our, source, pathways))

    return shape


def _infer_pathways(
    state: Mapping[str, torch.Tensor], source: str
) -> tuple[str, _Shape | None, _Shape | None]:
    """`(pathways, slow stem conv shape, fast stem conv shape)` from the stems present."""
    both = _shape_reader(state, source, "slowfast")
    slow_stem, fast_stem = both("slow.stem.conv.weight"), both("fast.stem.conv.weight")
    if slow_stem and fast_stem:
        return "slowfast", slow_stem, fast_stem
    slow_only = _shape_reader(state, source, "slow_only")
    fast_only = _shape_reader(state, source, "fast_only")
    single = slow_only("slow.stem.conv.weight") or fast_only("fast.stem.conv.weight")
    if single is None:
        raise ValueError(f"state_dict: no stem conv found for source={source!r}")
    if single[2] == 1:
        return "slow_only", single, None
    return "fast_only", None, single


def _infer_res4(shape: Callable[[str], _Shape | None], path: str) -> dict[str, object]:
    """`depth`, `res4_temporal_blocks` and `nonlocal_res4` from the res4 blocks of `path`."""
    res4 = 0
    while shape(f"{path}.stages.2.blocks.{res4}.conv_a.weight") is not None:
        res4 += 1
    depth = next((d for d, blocks in STAGE_DEPTHS.items() if blocks[2] == res4), None)
    if depth is None:
        raise ValueError(f"state_dict: res4 has {res4} blocks, matching no depth in {STAGE_DEPTHS}")
    temporal = sum(
        1 for j in range(res4) if shape(f"{path}.stages.2.blocks.{j}.conv_a.weight")[2] > 1
    )
    nonlocal_key = f"slow.stages.2.nonlocal_blocks.{nonlocal_positions(res4)[0]}.conv_theta.weight"
    return {
        "depth": depth,
        "res4_temporal_blocks": None if temporal == res4 else temporal,
        "nonlocal_res4": shape(nonlocal_key) is not None,
    }


def _infer_fusion(
    shape: Callable[[str], _Shape | None],
    slow_stem: _Shape,
    fast_stem: _Shape,
    base: SlowFastConfig,
) -> dict[str, object]:
    """The Fast-pathway fields of a two-pathway net: beta, Fast input and the lateral kind."""
    fields: dict[str, object] = {
        "beta_inv": slow_stem[0] // fast_stem[0],
        "fast_input": _fast_input(fast_stem[1], base),
    }
    lateral = shape("laterals.0.conv.weight")
    extra = shape("slow.stages.0.blocks.0.conv_a.weight")[1] - slow_stem[0]
    if lateral is not None:
        fields["fusion"] = "time_strided_conv"
        fields["fusion_kernel"] = lateral[2]
        fields["lateral_norm"] = shape("laterals.0.bn.weight") is not None
    elif extra == fast_stem[0]:
        fields["fusion"] = "time_strided_sampling"
    elif extra > 0 and extra % fast_stem[0] == 0:
        fields["fusion"] = "time_to_channel"
        fields["alpha"] = extra // fast_stem[0]
    return fields


def _fast_input(stem_channels: int, base: SlowFastConfig) -> str:
    """The Fast input a stem of `stem_channels` inputs reads: 1 gray, 2 flow; 3 channels are
    RGB, or `base`'s time difference or half resolution (the weights cannot tell)."""
    if stem_channels in (1, 2):
        return "gray" if stem_channels == 1 else "flow"
    return base.fast_input if base.fast_input in ("rgb", "time_diff", "half_res") else "rgb"


# ---------------------------------------------------------------------- conversion
def _our_keys(config: SlowFastConfig) -> list[str]:
    with torch.device("meta"):
        model = SlowFast(config)
    return list(model.state_dict())


def convert_state_dict(
    state_dict: Mapping[str, object],
    source: str,
    config: SlowFastConfig | str | None = None,
) -> dict[str, torch.Tensor]:
    """Translate a `source` state dict to our key layout.

    Args:
        state_dict: the foreign state dict, possibly wrapped (`model_state`, `state_dict`).
        source: 'pytorchvideo', 'pyslowfast' or 'mmaction2'.
        config: our config (or preset name used as inference base); inferred when None.

    Keys with no counterpart are kept under their original name, so a strict load reports
    them as unexpected.
    """
    check_source(source)
    state = unwrap_state_dict(state_dict)
    if not isinstance(config, SlowFastConfig):
        config = infer_config_from_state_dict(state, source, base=config)
    out: dict[str, torch.Tensor] = {}
    used = set()
    for ours in _our_keys(config):
        theirs = their_key(ours, source, config.pathways)
        if theirs is not None and theirs in state:
            out[ours] = state[theirs]
            used.add(theirs)
    for theirs, value in state.items():
        if theirs not in used:
            out[theirs] = value
    return out


def export_state_dict(
    state_dict: Mapping[str, object],
    target: str,
    config: SlowFastConfig | None = None,
) -> dict[str, torch.Tensor]:
    """Translate our state dict to `target`'s layout (inverse of `convert_state_dict`).

    Raises ValueError listing our keys that `target` cannot represent (e.g. lateral BN for
    mmaction2, non-local blocks outside PySlowFast).
    """
    check_source(target)
    state = unwrap_state_dict(state_dict)
    if config is None:
        config = infer_config_from_state_dict(state, "ours")
    out: dict[str, torch.Tensor] = {}
    lost = []
    for ours, value in state.items():
        theirs = their_key(ours, target, config.pathways)
        if theirs is None:
            lost.append(ours)
        else:
            out[theirs] = value
    if lost:
        raise ValueError(f"target={target!r} has no place for keys: {sorted(lost)[:20]}")
    return out


def load_pretrained(
    model: SlowFast,
    path_or_state: str | os.PathLike | Mapping[str, object],
    source: str | None = None,
    strict: bool = True,
    skip_head: bool = False,
) -> list[str]:
    """Load weights into `model` from a file or a state dict in any supported layout.

    Args:
        model: target network (its config drives the key translation).
        path_or_state: checkpoint path (.pyth/.pt/.pth) or a (wrapped) state dict.
        source: layout ('ours' or one of SOURCES); detected from key names when None.
        strict: raise ValueError listing missing / unexpected / mis-shaped keys.
        skip_head: drop the classifier weights (fine-tuning with a new num_classes).

    Returns the keys of `model` left at their initial values (the head when skip_head).
    """
    if isinstance(path_or_state, (str, os.PathLike)):
        path = os.fspath(path_or_state)
        if not path.endswith((".pyth", ".pt", ".pth")) or not os.path.isfile(path):
            raise ValueError(f"path_or_state={path!r}: not a .pyth/.pt/.pth file")
        raw = torch.load(path, map_location="cpu", weights_only=True)
    else:
        raw = path_or_state
    state = unwrap_state_dict(raw)
    source = source or detect_source(state)
    if source != "ours":
        state = convert_state_dict(state, source, config=model.config)
    if skip_head:
        state = {k: v for k, v in state.items() if not k.startswith("head.")}
    own = model.state_dict()
    missing = [k for k in own if k not in state and not (skip_head and k.startswith("head."))]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and v.shape != own[k].shape
    ]
    if strict and (missing or unexpected or mismatched):
        raise ValueError(
            f"load_pretrained (source={source!r}): missing keys {missing[:20]} "
            f"({len(missing)}), unexpected keys {unexpected[:20]} ({len(unexpected)}), "
            f"shape mismatches {mismatched[:20]}"
        )
    loadable = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape}
    model.load_state_dict(loadable, strict=False)
    return [k for k in own if k not in loadable]


def build_from_checkpoint(
    path_or_state: str | os.PathLike | Mapping[str, object],
    source: str,
    base: SlowFastConfig | str | None = None,
) -> SlowFast:
    """Build a model whose architecture is inferred from the checkpoint, and load it."""
    if isinstance(path_or_state, (str, os.PathLike)):
        raw = torch.load(os.fspath(path_or_state), map_location="cpu", weights_only=True)
    else:
        raw = path_or_state
    state = unwrap_state_dict(raw)
    model = build_model(infer_config_from_state_dict(state, source, base=base))
    load_pretrained(model, state, source=source)
    return model
