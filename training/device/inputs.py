"""Device-side feeding: uint8 clip batches -> the normalised ``[slow, fast]`` tensors a model
takes, and the stream that brings the next batch while the current step runs.

The loader ships uint8 ``(B, T, H, W, 3)`` arrays (4x smaller than float32 through the object
store and over PCIe), and only the Fast ones: with every index rule the Slow frames are
positions of the Fast frames. On the device:

1. the Slow frames are taken from the uint8 Fast ones by the positions of the clip spec
   (:func:`pipelines.sampling.slow_positions`): a gather of ``T`` of the ``alpha*T`` frames,
   bit for bit the frames the decoder would have produced;
2. each pathway is normalised in one fused op, ``addcmul(-mean/std, x, 1/(255*std))`` straight
   from uint8 into float32 ``(B, 3, T, H, W)`` (``channels_last_3d`` is the permuted uint8
   layout itself, so that format costs no extra copy);
3. with the spec's ``normalise: clip``, each clip is then standardised by its own per-channel
   mean and std over its Fast frames, and its Slow frames are taken from the standardised Fast
   ones (same statistics): :func:`standardise_clips`. Training, evaluation and prediction all
   feed through :meth:`DeviceInputs.for_spec`, so they normalise alike.

A training batch in plane form (``fast_y``, ``fast_uv``, ...: ``data.decode.train_view: planes``,
:mod:`pipelines.decode.planes`) is scaled, flipped and converted to RGB here
(:class:`training.device.yuv_to_rgb.PlaneConverter`), then its Slow frames are taken from the Fast ones.

:class:`DeviceFeed` wraps an iterable of host batches. On CUDA it copies batch ``i+1`` (pinned
by Ray Data's ``iter_torch_batches(pin_memory=True)``) and normalises it on a side stream while
step ``i`` runs on the compute stream: the copy engine works in parallel with the SMs, and
nothing in the loop waits on the host. Ray's own ``device=`` transfer issues the copy on the
compute stream from its fetch thread, where it runs between the step's kernels instead of
beside them (docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from pipelines import sampling
from pipelines.decode.planes import PER_ROW
from raysf.clip_spec import KINETICS_MEAN, KINETICS_STD, ClipSpec
from training.device.yuv_to_rgb import PlaneConverter

Batch = tuple[list[torch.Tensor], torch.Tensor]

#: Floor added to a clip's std (on [0, 1] pixels) by ``normalise: clip``: a clip with no
#: content but sensor noise (std ~ 0.01) is not blown up to unit variance.
CLIP_STD_FLOOR = 0.02


def standardise_clips(x: torch.Tensor, floor: torch.Tensor | float) -> torch.Tensor:
    """``(x - m) / (s + floor)`` per clip and channel of float ``(B, C, T, H, W)``, with ``m``
    and ``s`` the mean and (population) std over ``T, H, W``: each clip's own global colour and
    contrast removed. ``floor`` broadcasts against ``(1, C, 1, 1, 1)`` (per-channel units of
    ``x``)."""
    dims = (2, 3, 4)
    std, mean = torch.std_mean(x, dim=dims, keepdim=True, correction=0)
    return (x - mean) / (std + floor)


def _as_tensor(x: Any) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x


class DeviceInputs:
    """uint8 batches -> ``([slow, fast], labels)`` on ``device``; constants made once.

    Args:
        device: torch device (or its name).
        mean, std: per-channel statistics on [0, 1] pixels (3 values each).
        slow_positions: positions of the Slow frames among the Fast ones
            (:func:`pipelines.sampling.slow_positions`; required to feed a batch).
        channels_last: return tensors in ``torch.channels_last_3d`` memory format.
        crop_size: output side of batches in plane form (None: such batches are refused).
        per_clip: after ``(x - mean) / std``, standardise each clip by its own per-channel
            mean and std (:func:`standardise_clips`, floor :data:`CLIP_STD_FLOOR` on [0, 1]
            pixels); the Slow frames are then taken from the standardised Fast ones.
    """

    def __init__(
        self,
        device: Any = "cpu",
        mean: Sequence[float] = KINETICS_MEAN,
        std: Sequence[float] = KINETICS_STD,
        slow_positions: Sequence[int] | np.ndarray | None = None,
        channels_last: bool = False,
        crop_size: int | None = None,
        per_clip: bool = False,
    ):
        if len(mean) != 3 or len(std) != 3 or any(s <= 0 for s in std):
            raise ValueError(f"mean and std need 3 values (std > 0), got {mean}, {std}")
        self.device = torch.device(device)
        std_t = torch.tensor(std, dtype=torch.float64).view(1, 3, 1, 1, 1)
        mean_t = torch.tensor(mean, dtype=torch.float64).view(1, 3, 1, 1, 1)
        # (x/255 - m)/s = x * scale + bias, computed once in float64 then stored as float32
        self.scale = (1.0 / (255.0 * std_t)).float().to(self.device)
        self.bias = (-mean_t / std_t).float().to(self.device)
        # the floor in normalised units: CLIP_STD_FLOOR / std per channel
        self.floor = (CLIP_STD_FLOOR / std_t).float().to(self.device) if per_clip else None
        self.positions, self._frames_needed = None, 0
        if slow_positions is not None:
            pos = np.asarray(slow_positions, dtype=np.int64)
            self.positions = torch.from_numpy(pos).to(self.device)
            self._frames_needed = int(pos.max()) + 1  # a host int: checking it never syncs
        self.memory_format = torch.channels_last_3d if channels_last else torch.contiguous_format
        self.planes = None
        if crop_size is not None:
            self.planes = PlaneConverter(crop_size, self.scale, self.bias, self.memory_format)

    @classmethod
    def for_spec(cls, spec: ClipSpec, device: Any, channels_last: bool = False) -> DeviceInputs:
        """The feeding of clips cut as ``spec`` says: its mean, std, Slow positions and crop
        size (for batches in plane form)."""
        positions = sampling.slow_positions(spec.slow_frames, spec.alpha, spec.rule)
        return cls(
            device,
            spec.mean,
            spec.std,
            positions,
            channels_last,
            spec.crop_size,
            per_clip=spec.normalise == "clip",
        )

    def uint8_pathways(self, batch: Mapping[str, Any]) -> list[torch.Tensor]:
        """``[slow, fast]`` uint8 ``(B, T, H, W, 3)`` on the device, the Slow frames taken from
        the Fast ones."""
        if "fast" not in batch:
            raise ValueError(f"batch has no 'fast' entry (keys: {sorted(batch)})")
        fast = self._to_device("fast", batch["fast"])
        self._check_positions()
        if self._frames_needed > fast.shape[1]:
            raise ValueError(
                f"the Slow positions need {self._frames_needed} Fast frames, "
                f"the batch has {fast.shape[1]}"
            )
        return [fast.index_select(1, self.positions), fast]

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 ``(B, T, H, W, 3)`` on the device -> normalised float32 ``(B, 3, T, H, W)``."""
        x = x.permute(0, 4, 1, 2, 3)  # a view: channels_last_3d strides
        out = torch.empty(
            x.shape, dtype=torch.float32, device=x.device, memory_format=self.memory_format
        )
        return torch.addcmul(self.bias, x, self.scale, out=out)

    def inputs(self, batch: Mapping[str, Any]) -> list[torch.Tensor]:
        """The normalised ``[slow, fast]`` float32 tensors of ``batch`` on the device."""
        if "fast_y" in batch:
            return self.plane_inputs(batch)
        slow, fast = self.uint8_pathways(batch)
        if self.floor is None:
            return [self.normalise(slow), self.normalise(fast)]
        return self._per_clip(self.normalise(fast))

    def _per_clip(self, fast: torch.Tensor) -> list[torch.Tensor]:
        """Normalised Fast frames -> ``[slow, fast]`` standardised per clip (same statistics)."""
        fast = standardise_clips(fast, self.floor).contiguous(memory_format=self.memory_format)
        slow = fast.index_select(2, self.positions)
        return [slow.contiguous(memory_format=self.memory_format), fast]

    def plane_inputs(self, batch: Mapping[str, Any]) -> list[torch.Tensor]:
        """:meth:`inputs` of a batch in plane form (see the module docstring)."""
        if self.planes is None:
            raise ValueError(
                "batch is in plane form (data.decode.train_view: planes) but these inputs were made "
                "without a crop_size: build them with DeviceInputs.for_spec"
            )
        self._check_positions()
        meta = {k: _as_tensor(batch[k]).to(self.device, non_blocking=True) for k in PER_ROW}
        y = _as_tensor(batch["fast_y"]).to(self.device, non_blocking=True)
        uv = _as_tensor(batch["fast_uv"]).to(self.device, non_blocking=True)
        fast = self.planes(y, uv, **meta)
        if self.floor is not None:
            return self._per_clip(fast)
        slow = fast.index_select(2, self.positions)
        return [slow.contiguous(memory_format=self.memory_format), fast]

    def _check_positions(self) -> None:
        if self.positions is None:
            raise ValueError(
                "no Slow positions were given (batches carry only the Fast frames): "
                "build the inputs with DeviceInputs.for_spec"
            )

    def labels(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """The int64 labels of ``batch`` on the device (copied without blocking)."""
        return _as_tensor(batch["label"]).to(self.device, non_blocking=True).long()

    def __call__(self, batch: Mapping[str, Any]) -> Batch:
        return self.inputs(batch), self.labels(batch)

    def _to_device(self, key: str, x: Any) -> torch.Tensor:
        x = _as_tensor(x)
        if x.dtype != torch.uint8 or x.ndim != 5 or x.shape[-1] != 3:
            raise ValueError(f"{key} must be uint8 (B, T, H, W, 3), got {x.dtype} {tuple(x.shape)}")
        return x.to(self.device, non_blocking=True)


def to_model_inputs(
    batch: Mapping[str, Any],
    mean: Sequence[float] = KINETICS_MEAN,
    std: Sequence[float] = KINETICS_STD,
    device: Any = "cpu",
    channels_last: bool = False,
    slow_positions: Sequence[int] | np.ndarray | None = None,
) -> list[torch.Tensor]:
    """One-off :meth:`DeviceInputs.inputs`: uint8 ``(B, T, H, W, 3)`` pathway arrays ->
    normalised float32 ``[slow, fast]`` ``(B, 3, T, H, W)`` tensors on ``device``."""
    return DeviceInputs(device, mean, std, slow_positions, channels_last).inputs(batch)


class DeviceFeed:
    """Host batches -> ``([slow, fast], labels)`` on the device, one batch ahead on CUDA.

    With ``overlap`` on a CUDA device, the copy and normalisation of the next batch are issued
    on a side stream before the current batch is handed out; the compute stream waits for
    them only when it needs the batch (an event, not a host sync), and every tensor handed out
    is recorded on the compute stream so the caching allocator never reuses it early. On a CPU
    (or with ``overlap=False``) each batch is fed inline on the current stream.
    """

    def __init__(self, inputs: DeviceInputs, overlap: bool = True):
        self.inputs = inputs
        cuda = inputs.device.type == "cuda"
        self.stream = torch.cuda.Stream(inputs.device) if cuda and overlap else None

    def __call__(self, batches: Iterable[Mapping[str, Any]]) -> Iterator[Batch]:
        if self.stream is None:
            yield from (self.inputs(batch) for batch in batches)
            return
        it = iter(batches)
        staged = self._stage(it)
        while staged is not None:
            compute = torch.cuda.current_stream(self.inputs.device)
            compute.wait_stream(self.stream)
            for tensor in (*staged[0], staged[1]):
                tensor.record_stream(compute)
            ready, staged = staged, self._stage(it)
            yield ready

    def _stage(self, it: Iterator[Mapping[str, Any]]) -> Batch | None:
        """Issue the copy and normalisation of the next batch on the side stream."""
        try:
            batch = next(it)
        except StopIteration:
            return None
        on_device = any(isinstance(v, torch.Tensor) and v.is_cuda for v in batch.values())
        if on_device:  # made on the compute stream (e.g. by Ray's own device transfer)
            self.stream.wait_stream(torch.cuda.current_stream(self.inputs.device))
        with torch.cuda.stream(self.stream):
            return self.inputs(batch)
