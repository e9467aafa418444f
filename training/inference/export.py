"""Export a trained network for serving: TorchScript, a ``torch.export`` ExportedProgram, or ONNX.

The exported model has one signature for every variant::

    logits (B, num_classes) = model(slow (B, 3, T, H, W), fast (B, 3, alpha*T, H, W))

both float32 and already normalised, exactly what :func:`training.device.inputs.spec_inputs` feeds the
network in training and evaluation: uint8 RGB frames / 255, minus the clip spec's ``mean``,
divided by its ``std``, channels first. A single-pathway network (Slow-only, Fast-only) takes
the same pair and reads its own pathway, so one preprocessing feeds every export. The Fast
input of Table 5c (gray, time difference, half resolution, optical flow) is made inside the
network (:mod:`slowfast_model.fast_inputs`), so it is part of every export: ``fast`` is always
full-size RGB, and ``<out>.json`` records ``fast_input`` and ``fast_spatial_scale``. The batch
dimension is dynamic; frames and crop size are the clip spec's (``slow_frames``,
``alpha * slow_frames``, ``crop_size``).

Beside the model file ``<out>`` goes ``<out>.json``: the format, the inputs and output with
their shapes, the :class:`~raysf.clip_spec.ClipSpec` (how to cut and normalise clips, the
test views), the class names and the source checkpoint. Every export is loaded back and checked
against the eager network on a batch of another size before it is reported
(:attr:`ExportResult.max_abs_diff`).

ONNX needs the ``onnx`` extra (``pip install 'raysf[onnx]'``: onnx, onnxruntime and the
onnxscript exporter that ``torch.onnx`` uses); TorchScript and ExportedProgram need only torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from raysf.clip_spec import ClipSpec
from training.artifacts import build_model_from_state
from training.checkpoints import load_state
from training.device.inputs import CLIP_STD_FLOOR

FORMATS = ("torchscript", "exported-program", "onnx")
SUFFIX = {"torchscript": ".torchscript.pt", "exported-program": ".pt2", "onnx": ".onnx"}
INPUT_NAMES = ("slow", "fast")
#: Largest |exported - eager| logit difference accepted in the check after export (fp32).
TOLERANCE = 1e-4


class PathwayPair(torch.nn.Module):
    """The network with two tensor arguments instead of a list (what exporters trace)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, slow: torch.Tensor, fast: torch.Tensor) -> torch.Tensor:
        return self.model([slow, fast])


@dataclass(frozen=True)
class ExportResult:
    """An exported model: its file, the metadata beside it and the check against eager."""

    path: Path
    metadata_path: Path
    format: str
    max_abs_diff: float


def example_inputs(spec: ClipSpec, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Normalised-looking ``(slow, fast)`` tensors of the clip spec's shape (N(0, 1) values)."""
    gen = torch.Generator().manual_seed(seed)
    size = (spec.crop_size, spec.crop_size)
    slow = torch.randn(batch, 3, spec.slow_frames, *size, generator=gen)
    fast = torch.randn(batch, 3, spec.fast_frames, *size, generator=gen)
    return slow, fast


def _dynamic_batch() -> dict[str, dict[int, Any]]:
    batch = torch.export.Dim("batch", min=1, max=4096)
    return {name: {0: batch} for name in INPUT_NAMES}


def export_model(
    model: torch.nn.Module,
    spec: ClipSpec,
    fmt: str,
    out: str | Path,
    *,
    classes: list[str] | None = None,
    source: str | None = None,
) -> ExportResult:
    """Export ``model`` (eval mode, CPU, fp32) to ``out`` in ``fmt`` and write ``<out>.json``."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    wrapper = PathwayPair(model.float().cpu().eval()).eval()
    inputs = example_inputs(spec)
    with torch.no_grad():
        if fmt == "torchscript":
            torch.jit.trace(wrapper, inputs).save(str(out))
        elif fmt == "exported-program":
            program = torch.export.export(wrapper, inputs, dynamic_shapes=_dynamic_batch())
            torch.export.save(program, str(out))
        else:
            _export_onnx(wrapper, inputs, out)
    diff = check_export(wrapper, out, fmt, spec)
    meta = out.with_name(out.name + ".json")
    meta.write_text(json.dumps(metadata(model, spec, fmt, classes, source, diff), indent=2))
    return ExportResult(out, meta, fmt, diff)


def _export_onnx(wrapper: torch.nn.Module, inputs: tuple[torch.Tensor, ...], out: Path) -> None:
    try:
        # optional extra: only ONNX export needs them
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise RuntimeError(
            f"ONNX export needs the onnx extra ({exc.name} is missing): pip install 'raysf[onnx]'"
        ) from exc
    program = torch.onnx.export(
        wrapper,
        inputs,
        input_names=list(INPUT_NAMES),
        output_names=["logits"],
        dynamic_shapes=_dynamic_batch(),
        dynamo=True,
        verbose=False,
    )
    program.save(str(out))


def load_exported(path: str | Path, fmt: str):
    """A callable ``(slow, fast) -> logits`` (numpy float32) of an exported model."""
    path = str(path)
    if fmt == "torchscript":
        module = torch.jit.load(path)
        return lambda slow, fast: module(_tensor(slow), _tensor(fast)).detach().numpy()
    if fmt == "exported-program":
        module = torch.export.load(path).module()
        return lambda slow, fast: module(_tensor(slow), _tensor(fast)).detach().numpy()
    if fmt == "onnx":
        # optional extra: only ONNX models need the runtime
        import onnxruntime

        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]

        def run(slow, fast):
            feed = {"slow": _array(slow), "fast": _array(fast)}
            return session.run(None, {n: feed[n] for n in names})[0]

        return run
    raise ValueError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")


class ExportedNetwork(torch.nn.Module):
    """A TorchScript or ExportedProgram model called as the network is (``model([slow,
    fast])``), so prediction and serving feed exports and checkpoints alike."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module = module

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        slow, fast = inputs
        return self.module(slow.contiguous().float(), fast.contiguous().float())

    def train(self, mode: bool = True) -> ExportedNetwork:
        """Only this wrapper's flag: an export is traced in eval mode for good, and an
        ExportedProgram's module refuses ``train()``/``eval()`` outright (NotImplementedError)."""
        if mode:
            raise ValueError("an exported network is for inference only (traced in eval mode)")
        self.training = False
        return self


def is_export(path: str | Path) -> bool:
    """True when ``path`` has the ``<path>.json`` metadata an export writes beside its model."""
    meta = Path(f"{path}.json")
    return meta.is_file() and Path(path).is_file()


def load_export_network(path: str | Path) -> tuple[torch.nn.Module, ClipSpec, list[str]]:
    """An exported model (TorchScript or ExportedProgram; ONNX is not a torch module) as a
    network, with the clip spec and class names of its metadata; ``ValueError`` naming the file
    when it does not load."""
    meta = json.loads(Path(f"{path}.json").read_text())
    fmt = meta.get("format")
    try:
        if fmt == "torchscript":
            module = torch.jit.load(str(path), map_location="cpu")
        elif fmt == "exported-program":
            module = torch.export.load(str(path)).module()
        else:
            raise ValueError(f"format {fmt!r} is not served (torchscript or exported-program)")
        spec = ClipSpec.from_dict(meta["clip_spec"], origin=f"{path}.json")
    except (RuntimeError, KeyError, OSError) as exc:
        raise ValueError(f"{path}: not a loadable {fmt} export: {exc}") from exc
    classes = list(meta.get("classes") or [])
    return ExportedNetwork(module).eval(), spec, classes


def _tensor(x) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))


def _array(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def check_export(wrapper: torch.nn.Module, path: Path, fmt: str, spec: ClipSpec) -> float:
    """Largest |exported - eager| logit on a batch of 3 (not the traced size); ``ValueError``
    above :data:`TOLERANCE`."""
    slow, fast = example_inputs(spec, batch=3, seed=1)
    with torch.no_grad():
        expected = wrapper(slow, fast).numpy()
    got = load_exported(path, fmt)(slow, fast)
    diff = float(np.max(np.abs(got - expected)))
    if not np.isfinite(diff) or diff > TOLERANCE:
        raise ValueError(f"{path}: {fmt} export differs from the eager model by {diff:.3g}")
    return diff


def metadata(model, spec: ClipSpec, fmt: str, classes, source, diff: float) -> dict[str, Any]:
    """What ``<out>.json`` holds (see the module docstring)."""
    size = [spec.crop_size, spec.crop_size]
    config = getattr(model, "config", None)
    num_classes = getattr(config, "num_classes", len(classes or []))
    return {
        "format": fmt,
        "inputs": [
            {"name": "slow", "shape": ["batch", 3, spec.slow_frames, *size], "dtype": "float32"},
            {"name": "fast", "shape": ["batch", 3, spec.fast_frames, *size], "dtype": "float32"},
        ],
        "output": {"name": "logits", "shape": ["batch", num_classes], "dtype": "float32"},
        "normalisation": "uint8 RGB / 255, minus clip_spec.mean, divided by clip_spec.std"
        + (
            "; clip_spec.normalise: clip, so in effect (x/255 - m) / (s + "
            f"{CLIP_STD_FLOOR:g}) per clip and channel, m and s the mean and std of the clip's "
            "Fast frames on [0, 1] pixels (both pathways)"
            if spec.normalise == "clip"
            else ""
        ),
        "pathways": getattr(config, "pathways", None),
        "fast_input": getattr(config, "fast_input", None),
        "fast_spatial_scale": getattr(config, "fast_scale", None),
        "clip_spec": spec.to_dict(),
        "classes": list(classes or []),
        "source_checkpoint": source,
        "max_abs_diff_vs_eager": diff,
    }


def default_out(fmt: str, model_name: str) -> Path:
    """``<preset><suffix>`` in the current folder (``slowfast_8x8_r50.onnx``)."""
    return Path(f"{model_name}{SUFFIX[fmt]}")


def export_checkpoint(checkpoint: str, fmt: str, out: str | Path | None = None) -> ExportResult:
    """Export the network of a checkpoint (local or ``s3://``) with its clip spec and classes."""
    state = load_state(checkpoint)
    model = build_model_from_state(state)
    name = state.job_config.get("model", {}).get("preset") or "model"
    target = Path(out) if out else default_out(fmt, name)
    return export_model(
        model, state.clip_spec, fmt, target, classes=state.classes, source=str(checkpoint)
    )
