"""Parameter names of a SlowFast state dict in each foreign layout.

`their_key(our_key, source, pathways)` is a pure function of our module path. Layouts (slow
pathway, res2 first block, first conv):

    ours          slow.stages.0.blocks.0.conv_a.weight
    pytorchvideo  blocks.1.multipathway_blocks.0.res_blocks.0.branch2.conv_a.weight
    pyslowfast    s2.pathway0_res0.branch2.a.weight
    mmaction2     backbone.slow_path.layer1.0.conv1.conv.weight
"""

from __future__ import annotations

import re

SOURCES = ("pytorchvideo", "pyslowfast", "mmaction2")

_STEM = re.compile(r"(slow|fast)\.stem\.(conv|bn)\.(.+)")
_LATERAL = re.compile(r"laterals\.(\d)\.(conv|bn)\.(.+)")
_BLOCK = re.compile(r"(slow|fast)\.stages\.(\d)\.blocks\.(\d+)\.(\w+)\.(.+)")
_NONLOCAL = re.compile(r"slow\.stages\.(\d)\.nonlocal_blocks\.(\d+)\.(\w+)\.(.+)")
_HEAD = re.compile(r"head\.(weight|bias)")

_BLOCK_PARTS = {
    "pytorchvideo": {
        "conv_a": "branch2.conv_a", "bn_a": "branch2.norm_a",
        "conv_b": "branch2.conv_b", "bn_b": "branch2.norm_b",
        "conv_c": "branch2.conv_c", "bn_c": "branch2.norm_c",
        "proj_conv": "branch1_conv", "proj_bn": "branch1_norm",
    },
    "pyslowfast": {
        "conv_a": "branch2.a", "bn_a": "branch2.a_bn",
        "conv_b": "branch2.b", "bn_b": "branch2.b_bn",
        "conv_c": "branch2.c", "bn_c": "branch2.c_bn",
        "proj_conv": "branch1", "proj_bn": "branch1_bn",
    },
    "mmaction2": {
        "conv_a": "conv1.conv", "bn_a": "conv1.bn",
        "conv_b": "conv2.conv", "bn_b": "conv2.bn",
        "conv_c": "conv3.conv", "bn_c": "conv3.bn",
        "proj_conv": "downsample.conv", "proj_bn": "downsample.bn",
    },
}  # fmt: skip


def check_source(source: str) -> None:
    """Raise ValueError unless `source` is one of :data:`SOURCES`."""
    if source not in SOURCES:
        raise ValueError(f"source={source!r}: must be one of {SOURCES}")


def their_key(our_key: str, source: str, pathways: str) -> str | None:
    """The name `source` gives to our parameter/buffer `our_key`; None if it has none."""
    check_source(source)
    two = pathways == "slowfast"
    if m := _STEM.fullmatch(our_key):
        path, part, rest = m.groups()
        p = 0 if path == "slow" or not two else 1
        if source == "pytorchvideo":
            prefix = f"blocks.0.multipathway_blocks.{p}." if two else "blocks.0."
            return f"{prefix}{'conv' if part == 'conv' else 'norm'}.{rest}"
        if source == "pyslowfast":
            return f"s1.pathway{p}_stem.{part}.{rest}"
        return f"{_mm_prefix(path, two)}conv1.{part}.{rest}"
    if m := _LATERAL.fullmatch(our_key):
        i, part, rest = int(m.group(1)), m.group(2), m.group(3)
        if source == "pytorchvideo":
            name = "conv_fast_to_slow" if part == "conv" else "norm"
            return f"blocks.{i}.multipathway_fusion.{name}.{rest}"
        if source == "pyslowfast":
            return f"s{i + 1}_fuse.{'conv_f2s' if part == 'conv' else 'bn'}.{rest}"
        if part == "bn":
            return None  # mmaction2's laterals are a bare conv
        layer = "conv1_lateral" if i == 0 else f"layer{i}_lateral"
        return f"backbone.slow_path.{layer}.conv.{rest}"
    if m := _BLOCK.fullmatch(our_key):
        path, s, j, part, rest = m.groups()
        s, p = int(s), 0 if m.group(1) == "slow" or not two else 1
        sub = _BLOCK_PARTS[source].get(part)
        if sub is None:
            return None
        if source == "pytorchvideo":
            prefix = f"blocks.{s + 1}.multipathway_blocks.{p}." if two else f"blocks.{s + 1}."
            return f"{prefix}res_blocks.{j}.{sub}.{rest}"
        if source == "pyslowfast":
            return f"s{s + 2}.pathway{p}_res{j}.{sub}.{rest}"
        return f"{_mm_prefix(path, two)}layer{s + 1}.{j}.{sub}.{rest}"
    if m := _NONLOCAL.fullmatch(our_key):
        s, j, part, rest = m.groups()
        if source == "pyslowfast":
            return f"s{int(s) + 2}.pathway0_nonlocal{j}.{part}.{rest}"
        return None  # PyTorchVideo has no non-local SlowFast; mmaction2's differs (pooling)
    if m := _HEAD.fullmatch(our_key):
        if source == "pytorchvideo":
            return f"blocks.{6 if two else 5}.proj.{m.group(1)}"
        if source == "pyslowfast":
            return f"head.projection.{m.group(1)}"
        return f"cls_head.fc_cls.{m.group(1)}"
    return None


def _mm_prefix(path: str, two: bool) -> str:
    return f"backbone.{path}_path." if two else "backbone."
