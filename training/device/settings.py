"""How a model runs on its device: precision, memory format and compilation, resolved once.

``train.precision``, ``train.channels_last`` and ``train.compile`` default to ``auto``, which
:func:`resolve_device_settings` turns into one typed :class:`DeviceSettings` per device:

=============  ===========================  ==========================
setting        CUDA                         CPU
=============  ===========================  ==========================
precision      bf16 autocast                fp32
memory format  ``channels_last_3d``         contiguous
compile        ``torch.compile`` (train)    eager
=============  ===========================  ==========================

On a GPU the three together are what make a 3D ResNet fast (bf16 alone gains nothing without
``channels_last_3d``, whose cuDNN kernels are the bf16 tensor-core ones; compile fuses the
BatchNorm/ReLU/residual element-wise work around them). On a CPU each of them is slower or
no faster than fp32 eager, so ``auto`` leaves them off. Explicit values always win (``bf16``
needs CUDA). Inference (evaluation, prediction: ``inference=True``) gets bf16 and
``channels_last_3d`` on CUDA but is never compiled: its last batch has another size and would
compile again, for a handful of batches.

The plan resolves the settings on the driver from ``scaling.use_gpu`` (logged to MLflow as
``train.resolved.*`` and printed at start); every worker checks them against its device.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Literal

import torch

Precision = Literal["auto", "fp32", "bf16"]
#: ``true``, ``false`` or ``auto`` (resolved per device).
Switch = bool | Literal["auto"]


@dataclass(frozen=True)
class DeviceSettings:
    """What ``auto`` became on one kind of device (see the module docstring).

    Attributes:
        device_type: ``"cuda"`` or ``"cpu"``.
        precision: ``"bf16"`` (autocast, CUDA only) or ``"fp32"``.
        channels_last: model weights and inputs in ``torch.channels_last_3d``.
        compile: the training step calls ``torch.compile(model)``.
    """

    device_type: str
    precision: Literal["fp32", "bf16"] = "fp32"
    channels_last: bool = False
    compile: bool = False

    def __post_init__(self) -> None:
        if self.precision == "bf16" and self.device_type != "cuda":
            raise ValueError(
                f"precision bf16 (autocast) needs a CUDA device, got {self.device_type!r}"
            )

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last_3d if self.channels_last else torch.contiguous_format

    def autocast(self):
        """The autocast context of these settings (a no-op context for fp32)."""
        if self.precision == "bf16":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def place(self, model: torch.nn.Module, device: Any) -> torch.nn.Module:
        """``model`` moved to ``device`` in the memory format of these settings; on CUDA,
        cuDNN also benchmarks its convolution algorithms once per input shape
        (``torch.backends.cudnn.benchmark``: training shapes are fixed, ``drop_last``)."""
        if self.device_type == "cuda":
            torch.backends.cudnn.benchmark = True
        return model.to(device=torch.device(device), memory_format=self.memory_format)

    def check(self, device: Any) -> None:
        """``RuntimeError`` when ``device`` is not the kind these settings were resolved for."""
        kind = torch.device(device).type
        if kind != self.device_type:
            raise RuntimeError(
                f"device settings were resolved for {self.device_type!r} "
                f"(scaling.use_gpu), but this worker runs on {kind!r}"
            )

    def describe(self) -> str:
        """One line: ``cuda: bf16 autocast, channels_last_3d, torch.compile``."""
        parts = [
            "bf16 autocast" if self.precision == "bf16" else "fp32",
            "channels_last_3d" if self.channels_last else "contiguous",
            "torch.compile" if self.compile else "eager",
        ]
        return f"{self.device_type}: {', '.join(parts)}"

    def params(self, prefix: str = "train.resolved") -> dict[str, Any]:
        """The resolved values as MLflow parameters (``train.resolved.precision`` ...)."""
        return {
            f"{prefix}.device": self.device_type,
            f"{prefix}.precision": self.precision,
            f"{prefix}.channels_last": self.channels_last,
            f"{prefix}.compile": self.compile,
        }


def resolve_device_settings(
    device: Any,
    precision: str = "auto",
    channels_last: bool | str = "auto",
    compile: bool | str = "auto",
    *,
    inference: bool = False,
) -> DeviceSettings:
    """The :class:`DeviceSettings` of ``device`` (a ``torch.device``, its name or its type):
    each ``auto`` resolved as the module docstring says, explicit values kept.

    ``ValueError`` naming the setting for a value that is none of its choices, or for ``bf16``
    off CUDA.
    """
    kind = torch.device(device).type
    cuda = kind == "cuda"
    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"precision must be auto, fp32 or bf16, got {precision!r}")
    for name, value in (("channels_last", channels_last), ("compile", compile)):
        if value != "auto" and not isinstance(value, bool):
            raise ValueError(f"{name} must be true, false or auto, got {value!r}")
    return DeviceSettings(
        device_type=kind,
        precision=("bf16" if cuda else "fp32") if precision == "auto" else precision,
        channels_last=cuda if channels_last == "auto" else bool(channels_last),
        compile=(cuda and not inference) if compile == "auto" else bool(compile),
    )
