"""``torch.compile`` across the shapes of a schedule.

Dynamo compiles a graph per input shape (the worker compiles with ``dynamic=False``: every
shape of the schedule its own static graph); past ``torch._dynamo.config.recompile_limit``
(8 by default) recompilations of a function it stops compiling and runs that function in eager
mode from then on, with one log line. The default multigrid schedule has 12 step shapes, so the
worker raises the limit to the schedule's count before it compiles
(:func:`ensure_recompile_limit`), and says so; if this torch has no such setting it says that
the later shapes may run eager.
"""

from __future__ import annotations

import torch._dynamo.config as dynamo_config

#: Graphs besides the schedule's step shapes (a change of sub-batch BN groups, the last step).
MARGIN = 4


def ensure_recompile_limit(shapes: int, margin: int = MARGIN) -> str | None:
    """Raise Dynamo's per-function recompile limit to ``shapes + margin`` when it is lower;
    returns the line to log (``None`` when the limit was high enough)."""
    needed = shapes + margin
    name = next(
        (n for n in ("recompile_limit", "cache_size_limit") if hasattr(dynamo_config, n)), None
    )
    if name is None:
        return (
            f"torch.compile: this torch has no recompile limit setting; the schedule's {shapes} "
            "step shapes may fall back to eager after the limit (train.compile: false avoids it)"
        )
    current = int(getattr(dynamo_config, name))
    if current >= needed:
        return None
    setattr(dynamo_config, name, needed)
    accumulated = getattr(dynamo_config, "accumulated_recompile_limit", None)
    if accumulated is not None and accumulated < needed:
        dynamo_config.accumulated_recompile_limit = needed
    return (
        f"torch.compile: {shapes} step shapes in the schedule: torch._dynamo.config.{name} "
        f"raised from {current} to {needed} so that none falls back to eager"
    )
