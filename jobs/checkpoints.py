"""The project's checkpoint: one ``state.pt`` file that can be evaluated or fine-tuned alone.

It holds model, optimizer and scheduler state, the epoch, the resolved job config, the model
config and the preprocessing (mean, std, sizes, T, tau, alpha, index rule) plus the class names, so
``jobs.evaluate`` and ``jobs.predict`` need nothing but the checkpoint. It is read with
``torch.load(weights_only=True)``: only tensors and plain Python values are stored.
"""

from __future__ import annotations

import io
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

STATE_FILE = "state.pt"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Preprocessing:
    """How clips must be sampled and normalised to feed a model."""

    slow_frames: int
    tau: int
    alpha: int
    rule: str = "stride"
    target_fps: float | None = None
    mean: tuple[float, float, float] = (0.45, 0.45, 0.45)
    std: tuple[float, float, float] = (0.225, 0.225, 0.225)
    crop_size: int = 224
    short_side_range: tuple[int, int] = (256, 320)
    test_short_side: int = 256
    num_test_clips: int = 10
    num_test_crops: int = 3

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("mean", "std", "short_side_range"):
            if key in known:
                known[key] = tuple(known[key])
        return cls(**known)


@dataclass
class TrainingState:
    """Everything a checkpoint holds (the optimizer/scheduler parts may be empty)."""

    model: dict[str, torch.Tensor]
    model_config: dict[str, Any]
    preprocessing: Preprocessing
    classes: list[str]
    epoch: int = -1
    global_step: int = 0
    optimizer: dict[str, Any] | None = None
    scheduler: dict[str, Any] | None = None
    job_config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    confusion: list[list[int]] | None = None

    def to_payload(self) -> dict[str, Any]:
        payload = {k: getattr(self, k) for k in self.__dataclass_fields__}
        payload["preprocessing"] = self.preprocessing.to_dict()
        payload["format_version"] = FORMAT_VERSION
        return payload

    @classmethod
    def from_payload(cls, payload: dict[str, Any], origin: str = "checkpoint") -> TrainingState:
        missing = [k for k in ("model", "model_config", "preprocessing") if k not in payload]
        if missing:
            raise ValueError(f"{origin}: not a raysf checkpoint (missing {missing})")
        data = {k: payload[k] for k in cls.__dataclass_fields__ if k in payload}
        data["preprocessing"] = Preprocessing.from_dict(payload["preprocessing"])
        data.setdefault("classes", [str(i) for i in range(payload["model_config"]["num_classes"])])
        return cls(**data)


def save_state(state: TrainingState, directory: str | os.PathLike) -> Path:
    """Write ``state.pt`` into ``directory`` (atomically: temp file then rename)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / (STATE_FILE + ".tmp")
    torch.save(state.to_payload(), tmp)
    os.replace(tmp, directory / STATE_FILE)
    return directory / STATE_FILE


def _read_bytes(uri: str) -> bytes:
    if "://" in uri and not uri.startswith("file://"):
        from pipelines.storage import resolve_filesystem

        fs, path = resolve_filesystem(uri)
        with fs.open_input_file(path) as f:
            return f.read()
    return Path(uri.removeprefix("file://")).read_bytes()


def state_file_of(uri: str) -> str:
    """Accept a checkpoint directory (local or s3://) or a ``state.pt`` path."""
    uri = str(uri)
    if uri.endswith((".pt", ".pth", ".pyth")):
        return uri
    return uri.rstrip("/") + "/" + STATE_FILE


def load_state(uri: str | os.PathLike, map_location: str = "cpu") -> TrainingState:
    """Read a checkpoint written by :func:`save_state` (local path or s3:// URI)."""
    path = state_file_of(str(uri))
    try:
        raw = _read_bytes(path)
    except (OSError, FileNotFoundError) as exc:
        raise FileNotFoundError(f"{path}: cannot read checkpoint: {exc}") from exc
    payload = torch.load(io.BytesIO(raw), map_location=map_location, weights_only=True)
    return TrainingState.from_payload(payload, origin=path)


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """Strip DDP and ``torch.compile`` wrappers (works at world size 1 too)."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model
