"""Statistics beside the opportunity maths: the funnel threshold and SPC (XmR) charts.

Funnel-plot significance itself is computed with the rest of the maths (opportunities.py).

SPC follows NHS England's "Making Data Count": XmR limits at mean ± 2.66 × mean moving range;
special cause when a point is beyond a limit, a run of 7 or more points on one side of the mean
(a shift), or 7 or more points consecutively rising or falling (a trend).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

Z95 = 1.959964
SHIFT_RUN = 7
TREND_RUN = 7


@dataclass
class XmR:
    mean: float
    mr_bar: float
    ucl: float
    lcl: float
    beyond: list[bool] = field(default_factory=list)
    shift: list[bool] = field(default_factory=list)
    trend: list[bool] = field(default_factory=list)

    @property
    def special_cause(self) -> list[bool]:
        return [a or b or c for a, b, c in zip(self.beyond, self.shift, self.trend)]


def xmr(values: list[float], baseline: int | None = None) -> XmR | None:
    """XmR limits from the first ``baseline`` points (all when None) and the special-cause flags.

    Fixing limits on a baseline is how "is the change since the scheme started real?" is asked:
    limits from before the start, points after it judged against them.
    """
    values = [float(v) for v in values if v is not None and not math.isnan(v)]
    if len(values) < 2:
        return None
    base = values[: baseline or len(values)]
    if len(base) < 2:
        base = values
    mean = sum(base) / len(base)
    moving = [abs(b - a) for a, b in zip(base, base[1:])]
    mr_bar = sum(moving) / len(moving)
    ucl, lcl = mean + 2.66 * mr_bar, mean - 2.66 * mr_bar
    n = len(values)
    beyond = [v > ucl or v < lcl for v in values]
    shift = [False] * n
    side = [0 if v == mean else (1 if v > mean else -1) for v in values]
    start = 0
    for i in range(1, n + 1):
        if i == n or side[i] != side[start] or side[i] == 0:
            if side[start] != 0 and i - start >= SHIFT_RUN:
                for j in range(start, i):
                    shift[j] = True
            start = i
    trend = [False] * n
    start = 0
    direction = 0
    for i in range(1, n):
        step = (values[i] > values[i - 1]) - (values[i] < values[i - 1])
        if step == 0 or step != direction:
            start, direction = i - 1, step
        if direction != 0 and i - start + 1 >= TREND_RUN:
            for j in range(start, i + 1):
                trend[j] = True
    return XmR(mean, mr_bar, ucl, lcl, beyond, shift, trend)


def group_quantiles(keys: np.ndarray, values: np.ndarray, qs: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quantiles of ``values`` within each group of integer ``keys``, all groups at once.

    Linear interpolation between closest ranks (h = (n − 1)·q), the definition of SQL's
    ``quantile_cont`` and numpy's default, so internal benchmarks match either. Returns the
    sorted unique keys, each group's size and a (groups × len(qs)) array.
    """
    if len(keys) == 0:
        return keys[:0], np.zeros(0, dtype=np.int64), np.zeros((0, len(qs)))
    order = np.lexsort((values, keys))
    k, v = keys[order], values[order]
    starts = np.flatnonzero(np.concatenate(([True], k[1:] != k[:-1])))
    counts = np.diff(np.append(starts, len(k)))
    out = np.empty((len(starts), len(qs)))
    for j, q in enumerate(qs):
        h = (counts - 1) * q
        lo = np.floor(h).astype(np.int64)
        hi = np.minimum(lo + 1, counts - 1)
        low = v[starts + lo]
        out[:, j] = low + (h - lo) * (v[starts + hi] - low)
    return k[starts], counts, out
