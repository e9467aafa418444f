"""What each sampling stride can tell apart on SynthMotion, from the renderer's own states."""

from __future__ import annotations

import pytest

from pipelines.synth.ceilings import ceiling, seen_at_stride
from pipelines.synth.spec import ALIASING_CLASSES, CLASS_NAMES


def test_the_demo_sampling_ceilings():
    """Slow at stride 8 sees the drifts only (one blind group of four: 3/6 = 0.5); Fast at
    stride 2 sees every class of the demo's six (ceiling 1)."""
    demo = CLASS_NAMES[:6]
    slow, fast = ceiling(demo, 8), ceiling(demo, 2)
    assert slow.seen == ("drift_right", "drift_left")
    assert set(slow.blind) == {"still", *ALIASING_CLASSES}
    assert slow.top1 == pytest.approx(0.5)
    assert slow.class_ceiling("vibrate") == 0.25 and slow.class_ceiling("drift_left") == 1.0
    assert fast.blind == ("still",) and fast.top1 == 1.0


@pytest.mark.parametrize(
    ("stride", "blind"),
    [
        (1, set()),
        (4, {"vibrate", "flicker"}),
        (8, set(ALIASING_CLASSES)),
        (16, set(ALIASING_CLASSES)),
    ],
)
def test_a_class_is_blind_when_its_period_divides_the_stride(stride, blind):
    for label in CLASS_NAMES:
        if label == "still":
            assert not seen_at_stride(label, stride)
            continue
        assert seen_at_stride(label, stride) == (label not in blind), (label, stride)
    assert ceiling(CLASS_NAMES, stride).top1 == pytest.approx(
        (len(CLASS_NAMES) - len(blind) - 1 + 1) / len(CLASS_NAMES)
    )
