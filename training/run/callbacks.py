"""Ray Train callbacks of the training job (they run in the Train controller process)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ray.train import UserCallback


class MetricsLogCallback(UserCallback):
    """Append every report of every worker, and every worker failure, to a JSON-lines file.

    One line per ``ray.train.report`` round: ``{"time", "rank_metrics": [per-rank dicts],
    "checkpoint": path or null}``; failures as ``{"time", "failures": {rank: message}}``. The
    file is on the controller's node: use it for local runs, tests and debugging.
    """

    def __init__(self, path: str):
        self.path = str(path)

    def _write(self, record: dict[str, Any]) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps(record, default=str) + "\n")

    def after_report(self, run_context, metrics, checkpoint) -> None:
        self._write(
            {
                "time": time.time(),
                "rank_metrics": metrics,
                "checkpoint": getattr(checkpoint, "path", None),
            }
        )

    def after_exception(self, run_context, worker_exceptions) -> None:
        self._write(
            {
                "time": time.time(),
                "failures": {str(k): repr(v) for k, v in worker_exceptions.items()},
            }
        )
