"""Clip records that fail to decode while streaming: dropped, counted, reported.

A record that passed ingest can still fail to decode (bit rot in the middle of a file, since
ingest decodes every frame of the training videos only with ``checks.decode_all: true``). The
loader's decode task (:func:`pipelines.loader.dataset.decode_batch`) catches the failure of one
record, drops that record (its batch goes on with the others) and tells the run's
:class:`DecodeErrorLog`: one small Ray actor (no CPU) owned by the driver and placed on the
driver's node, which the training worker of rank 0 reads once per epoch
(:meth:`DecodeErrorLog.take`: counts per split since the last read, and the first failures
with their messages). A decode task waits for the log to have recorded the failure before it
returns its rows, so an epoch whose rows have all been consumed has all of its failures in the
log.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Failures kept with their message per read (the counts are always complete).
KEEP_EXAMPLES = 1000


class DecodeErrorLog:
    """Counts and first messages of dropped records, per split (run as a Ray actor)."""

    def __init__(self, keep: int = KEEP_EXAMPLES) -> None:
        self.keep = keep
        self.counts: Counter[str] = Counter()
        self.examples: list[dict[str, Any]] = []

    def record(self, split: str, video_id: str, clip_index: int, message: str) -> None:
        self.counts[split] += 1
        if len(self.examples) < self.keep:
            self.examples.append(
                {"split": split, "video_id": video_id, "clip_index": clip_index, "message": message}
            )

    def take(self) -> dict[str, Any]:
        """``{"counts": {split: n}, "examples": [...]}`` since the last call, then reset."""
        out = {"counts": dict(self.counts), "examples": list(self.examples)}
        self.counts.clear()
        self.examples.clear()
        return out


def start_decode_error_log():
    """A :class:`DecodeErrorLog` actor owned by this process and placed on its node, so that it
    lives exactly as long as the driver: a lost worker node (whose training workers Ray Train
    restarts) cannot take the run's log with it."""
    import ray  # heavy; the log itself is a plain class, tested without Ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # as above

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    return ray.remote(num_cpus=0, scheduling_strategy=here)(DecodeErrorLog).remote()


def take_decode_errors(log) -> dict[str, Any]:
    """:meth:`DecodeErrorLog.take` of the actor ``log``."""
    import ray  # heavy; called only where Ray runs

    return ray.get(log.take.remote())


@dataclass(frozen=True)
class DecodeErrorSink:
    """What a decode task holds: the run's log actor and the split its records belong to."""

    log: Any
    split: str

    def record(self, record: Mapping[str, Any], exc: BaseException) -> None:
        """Tell the log that ``record`` failed with ``exc`` (waits until it is recorded)."""
        import ray  # runs inside a Ray Data task

        message = " ".join(f"{type(exc).__name__}: {exc}".split())
        video_id = str(record.get("video_id", "?"))
        clip_index = int(record.get("clip_index", -1))
        ray.get(self.log.record.remote(self.split, video_id, clip_index, message))
