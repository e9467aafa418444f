"""Seed statistics of a sweep: mean, standard deviation, t-based confidence intervals and paired
differences. Pure Python (no SciPy: it is not a dependency of the project).

A configuration trained with n seeds has n values; its interval is the Student-t interval
``mean ± t(1 - (1 - level)/2, n - 1) · s / sqrt(n)``. A paired difference against a baseline
takes, for every seed both finished, ``value(seed) - baseline(seed)`` and gives those
differences the same interval: same data, same schedule, same seed, so seed-to-seed noise
shared by both runs cancels. A missing value (failed or unfinished trial) is left out, never
counted as zero.

The t quantile uses the closed forms of the t distribution for integer degrees of freedom
(Abramowitz & Stegun 26.7.3/26.7.4) and bisection on them: exact to ~1e-12 for every ``df``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


def t_two_sided_mass(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with ``df`` (integer >= 1) degrees of freedom."""
    if df < 1 or int(df) != df:
        raise ValueError(f"df must be an integer >= 1, got {df!r}")
    if t <= 0:
        return 0.0
    theta = math.atan(t / math.sqrt(df))
    s, c2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2 == 0:
        # sin(theta) * (1 + 1/2 c^2 + 1*3/(2*4) c^4 + ... up to c^(df-2))
        term, total = 1.0, 1.0
        for k in range(1, df // 2):
            term *= c2 * (2 * k - 1) / (2 * k)
            total += term
        return s * total
    if df == 1:
        return 2 * theta / math.pi
    # 2/pi * (theta + sin(theta) cos(theta) (1 + 2/3 c^2 + 2*4/(3*5) c^4 + ... up to c^(df-3)))
    term, total = 1.0, 1.0
    for k in range(1, (df - 1) // 2):
        term *= c2 * (2 * k) / (2 * k + 1)
        total += term
    return 2 / math.pi * (theta + s * math.sqrt(c2) * total)


def t_quantile(level: float, df: int) -> float:
    """The two-sided critical value: ``t`` with P(|T| <= t) = ``level`` (1.96... as df grows).

    ``t_quantile(0.95, 2)`` = 4.303 (the 97.5 % point of t with 2 degrees of freedom).
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    lo, hi = 0.0, 1.0
    while t_two_sided_mass(hi, df) < level:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if t_two_sided_mass(mid, df) < level:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return (lo + hi) / 2


@dataclass(frozen=True)
class Summary:
    """Statistics of one set of values (accuracies of one configuration, or paired differences).

    ``std``, ``half_width``, ``low`` and ``high`` are ``None`` with fewer than two values (no
    interval can be computed from one seed); ``mean`` is ``None`` with none.
    """

    n: int
    mean: float | None
    std: float | None
    half_width: float | None
    level: float = 0.95

    @property
    def low(self) -> float | None:
        return None if self.half_width is None else self.mean - self.half_width

    @property
    def high(self) -> float | None:
        return None if self.half_width is None else self.mean + self.half_width

    @property
    def excludes_zero(self) -> bool | None:
        """Whether the interval lies wholly above or below 0 (``None`` without an interval)."""
        if self.half_width is None:
            return None
        return self.low > 0 or self.high < 0


def summarize(values: Iterable[float | None], level: float = 0.95) -> Summary:
    """Mean, sample standard deviation (n - 1) and the t interval of the non-missing values."""
    xs = [float(v) for v in values if v is not None and not math.isnan(v)]
    n = len(xs)
    if n == 0:
        return Summary(0, None, None, None, level)
    mean = math.fsum(xs) / n
    if n == 1:
        return Summary(1, mean, None, None, level)
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    return Summary(n, mean, std, t_quantile(level, n - 1) * std / math.sqrt(n), level)


def paired_differences(
    values: Mapping[int, float | None], baseline: Mapping[int, float | None]
) -> dict[int, float]:
    """``value - baseline`` per seed, for the seeds where both are present (sorted by seed)."""
    return {
        seed: float(values[seed]) - float(baseline[seed])
        for seed in sorted(values)
        if values[seed] is not None and baseline.get(seed) is not None
    }


def seeds_needed(std: float, effect: float, level: float = 0.95, at_most: int = 1000) -> int | None:
    """Smallest n whose t interval half-width ``t(level, n-1) · std / sqrt(n)`` is below
    ``|effect|`` (so that a true difference of that size would exclude 0 if the spread stays
    ``std``); ``None`` if more than ``at_most`` or ``effect`` is 0."""
    if effect == 0:
        return None
    if std == 0:
        return 2
    for n in range(2, at_most + 1):
        if t_quantile(level, n - 1) * std / math.sqrt(n) < abs(effect):
            return n
    return None
