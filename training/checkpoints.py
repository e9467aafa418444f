"""The project's checkpoint: one ``state.pt`` file that can be evaluated or fine-tuned alone.

It holds model, optimizer and scheduler state, the epoch, the resolved job config, the model
config and the :class:`~raysf.clip_spec.ClipSpec` (sampling, sizes, test views, mean/std) plus
the class names, so evaluation and prediction need nothing but the checkpoint; ``schedule``
records the shape schedule's phase of its epoch (``training.worker.phases``; empty in
checkpoints written before it). It is read with
``torch.load(weights_only=True)``: only tensors and plain Python values are stored.

Format 2 stores the spec as ``clip_spec``; format 1 (still read) stored a ``preprocessing``
dict with the same field names, converted on load.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from raysf import storage
from raysf.clip_spec import ClipSpec
from raysf.storage import StorageLocation

STATE_FILE = "state.pt"
FORMAT_VERSION = 2


@dataclass
class TrainingState:
    """Everything a checkpoint holds (the optimizer/scheduler parts may be empty)."""

    model: dict[str, torch.Tensor]
    model_config: dict[str, Any]
    clip_spec: ClipSpec
    classes: list[str]
    epoch: int = -1
    global_step: int = 0
    optimizer: dict[str, Any] | None = None
    scheduler: dict[str, Any] | None = None
    job_config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    confusion: list[list[int]] | None = None
    schedule: dict[str, Any] = field(default_factory=dict)

    def to_payload(self) -> dict[str, Any]:
        payload = {k: getattr(self, k) for k in self.__dataclass_fields__}
        payload["clip_spec"] = self.clip_spec.to_dict()
        payload["format_version"] = FORMAT_VERSION
        return payload

    @classmethod
    def from_payload(cls, payload: dict[str, Any], origin: str = "checkpoint") -> TrainingState:
        spec_key = "clip_spec" if payload.get("format_version", 1) >= 2 else "preprocessing"
        missing = [k for k in ("model", "model_config", spec_key) if k not in payload]
        if missing:
            raise ValueError(f"{origin}: not a raysf checkpoint (missing {missing})")
        data = {k: payload[k] for k in cls.__dataclass_fields__ if k in payload}
        if spec_key == "clip_spec":
            data["clip_spec"] = ClipSpec.from_dict(payload["clip_spec"], f"{origin}: clip_spec")
        else:
            data["clip_spec"] = ClipSpec.from_legacy(payload["preprocessing"], origin)
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


def state_file_of(where: StorageLocation) -> StorageLocation:
    """Accept a checkpoint directory (local or s3://) or a ``state.pt`` path."""
    if where.path.endswith((".pt", ".pth", ".pyth")):
        return where
    return where.join(STATE_FILE)


def load_state(
    where: StorageLocation | str | os.PathLike, map_location: str = "cpu"
) -> TrainingState:
    """Read a checkpoint written by :func:`save_state`: a location, or a local path or s3:// URI
    (resolved with the AWS environment's S3 settings)."""
    path = state_file_of(storage.as_location(where))
    try:
        raw = path.read_bytes()
    except (OSError, FileNotFoundError) as exc:
        raise FileNotFoundError(f"{path}: cannot read checkpoint: {exc}") from exc
    try:
        payload = torch.load(io.BytesIO(raw), map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises RuntimeError/UnpicklingError/EOFError/...
        message = " ".join(str(exc).split())[:300]
        raise ValueError(
            f"{path}: not a readable checkpoint ({type(exc).__name__}: {message})"
        ) from exc
    if not isinstance(payload, dict):
        raise ValueError(f"{path}: not a raysf checkpoint (holds a {type(payload).__name__})")
    try:
        return TrainingState.from_payload(payload, origin=path.uri)
    except (KeyError, TypeError) as exc:
        raise ValueError(
            f"{path}: malformed raysf checkpoint ({type(exc).__name__}: {exc})"
        ) from exc


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """Strip DDP and ``torch.compile`` wrappers (works at world size 1 too)."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model
