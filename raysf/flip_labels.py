"""What a horizontal flip does to a dataset's labels: nothing, swap a pair, or not allowed.

Flipping a clip left-right is the default training augmentation, and for most actions the
label stays true ("juggling" mirrored is juggling). For some it does not: SynthMotion's
``drift_right`` mirrored moves left, Something-Something's "pushing something from left to
right" becomes its opposite. A dataset declares this once, in its manifest (``flip``), from the
ingest's config (``flip.pairs`` / ``flip.allowed``):

- ``pairs``: ``[[a, b], ...]``: a flipped clip of ``a`` trains with label ``b`` and back;
  every other class keeps its label;
- ``allowed: false``: no training clip of the dataset is flipped (``data.clip.flip`` is turned
  off for it), e.g. when text or a hand's side matters.

Training swaps the labels of flipped clips (:meth:`FlipLabels.label_map`, used by the loader);
evaluation and prediction cut unflipped views, so they need no map. A manifest without ``flip``
(written before this field) means allowed, no pairs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FlipLabels:
    """A dataset's flip rule (see the module docstring).

    Attributes:
        allowed: whether training may flip the dataset's clips.
        pairs: class-name pairs that a flip swaps.
    """

    allowed: bool = True
    pairs: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for pair in self.pairs:
            if len(pair) != 2 or pair[0] == pair[1]:
                raise ValueError(f"pairs: {list(pair)} is not a pair of two classes")
            for name in pair:
                if name in seen:
                    raise ValueError(f"pairs: class {name!r} is in two pairs")
                seen.add(name)
        if self.pairs and not self.allowed:
            raise ValueError("pairs: given with allowed: false (a pair needs flips)")

    @classmethod
    def from_dict(cls, value: Mapping[str, Any] | None, where: str = "flip") -> FlipLabels:
        """The rule of a config or manifest section ``{"allowed": bool, "pairs": [[a, b]]}``
        (None: the default); ``ValueError`` naming ``where`` for anything else."""
        if value is None:
            return cls()
        if not isinstance(value, Mapping) or set(value) - {"allowed", "pairs"}:
            raise ValueError(f"{where}: expected {{allowed: bool, pairs: [[a, b], ...]}}")
        allowed, pairs = value.get("allowed", True), value.get("pairs") or ()
        if not isinstance(allowed, bool):
            raise ValueError(f"{where}.allowed: expected true or false, got {allowed!r}")
        if not isinstance(pairs, Sequence) or any(
            isinstance(p, str) or not isinstance(p, Sequence) for p in pairs
        ):
            raise ValueError(f"{where}.pairs: expected a list of [class, class] pairs")
        try:
            return cls(allowed, tuple(tuple(str(n) for n in p) for p in pairs))
        except ValueError as exc:
            raise ValueError(f"{where}.{exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        return {"allowed": self.allowed, "pairs": [list(p) for p in self.pairs]}

    def check_classes(self, classes: Sequence[str], where: str = "flip.pairs") -> None:
        """``ValueError`` naming a paired class the dataset does not have."""
        known = set(classes)
        for pair in self.pairs:
            for name in pair:
                if name not in known:
                    raise ValueError(
                        f"{where}: class {name!r} is not one of the dataset's classes "
                        f"{sorted(known)}"
                    )

    def label_map(self, classes: Sequence[str]) -> tuple[int, ...] | None:
        """``map[label_id]``: the label a flipped clip trains with; None when no flip changes a
        label (no pairs)."""
        if not self.pairs:
            return None
        self.check_classes(classes)
        index = {name: i for i, name in enumerate(classes)}
        out = list(range(len(classes)))
        for a, b in self.pairs:
            out[index[a]], out[index[b]] = index[b], index[a]
        return tuple(out)
