"""Statistics beside the opportunity maths: funnel plots with over-dispersion, the 80 % range of a
rate, and SPC (XmR) charts.

Funnel plots follow Spiegelhalter (Stat Med 2005; Qual Saf Health Care 2005) as implemented in
NHS-R's FunnelPlotR (R/od_adjustment.R): each unit's value on a variance-stabilising scale
(arcsine √p for a proportion, log(observed ÷ expected) for a count per unit), naive z-scores, then
the additive random-effects model: z winsorised at 10 % each tail, φ = mean of winsorised z²,
τ² = max(0, (nφ − (n − 1)) ÷ (Σw − Σw² ÷ Σw)) with w = 1/s², limits target ± z·√(s² + τ²).

SPC follows NHS England's "Making Data Count": XmR limits at mean ± 2.66 × mean moving range;
special cause when a point is beyond a limit, a run of 7 or more points on one side of the mean
(a shift), or 7 or more points consecutively rising or falling (a trend).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

Z95 = 1.959964
Z998 = 3.090232  # two-sided 99.8 %
Z80 = 1.281552   # two-sided 80 %: the £ range
WINSOR = 0.10
SENTINEL_Z = 1e9  # z of a unit whose target leaves no sampling error (e.g. a target of 0)
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


def funnel_scale(funnel: np.ndarray, num: np.ndarray, den: np.ndarray,
                 target: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each unit's value ``y``, its target ``t`` and the standard error ``s`` on the funnel's scale.

    binomial (a proportion): y = asin(√p), t = asin(√target), s = 1 ÷ (2√n): FunnelPlotR's "PR".
    poisson (a count per unit, e.g. bed days per spell): the ratio of observed to expected, O ÷ E
    with E = target × denominator, on the log scale: y = log(O ÷ E), t = 0, s = 1 ÷ √E: FunnelPlotR's
    "SR" (SHMI method). A length of stay is a mean per spell: treating its bed days as a Poisson
    count given the spells understates how much stays vary, which is exactly the extra variation
    the over-dispersion τ² takes up. O = 0 is read as 0.5 so the log is finite.
    none: NaN throughout (money shares are not tested).
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.clip(num / den, 0.0, 1.0)
        expected = target * den
        y = np.where(funnel == "binomial", np.arcsin(np.sqrt(p)), np.log(np.where(num > 0, num, 0.5) / expected))
        t = np.where(funnel == "binomial", np.arcsin(np.sqrt(np.clip(target, 0.0, 1.0))), 0.0)
        s = np.where(funnel == "binomial", 1.0 / (2.0 * np.sqrt(den)), 1.0 / np.sqrt(expected))
    none = (funnel == "none") | np.isnan(target)
    for a in (y, t, s):
        a[none] = np.nan
    return y, t, s


def funnel_z(y: np.ndarray, t: np.ndarray, s: np.ndarray, actual: np.ndarray, target: np.ndarray,
             tau2: np.ndarray | float = 0.0) -> np.ndarray:
    """z = (y − t) ÷ √(s² + τ²); naive when τ² = 0. Where the target leaves no sampling error
    (s infinite, e.g. a Poisson target of 0) z is 0 when actual equals target, else ±1e9."""
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (y - t) / np.sqrt(s * s + tau2)
    degenerate = ~np.isfinite(s) & ~np.isnan(s) | ~np.isfinite(y) & ~np.isnan(y)
    z[degenerate] = np.where(actual[degenerate] == target[degenerate], 0.0,
                             np.sign(actual[degenerate] - target[degenerate]) * SENTINEL_Z)
    return z


def overdispersion(groups: np.ndarray, z: np.ndarray, s: np.ndarray, n_groups: int,
                   trim: float = WINSOR) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """φ, τ² and the number of units n for each group (metric) 0..n_groups−1 from naive z-scores.

    Units with no finite z (no target, not testable, or the ±1e9 of a degenerate target) take no
    part. z is winsorised at the ``trim`` and 1 − ``trim`` quantiles of its group (linear
    interpolation, R's default type 7, as FunnelPlotR's ``quantile``); φ is the mean of the
    winsorised z²; τ² = 0 when nφ < n − 1 (no more spread than chance) or fewer than two units,
    else (nφ − (n − 1)) ÷ (Σw − Σw² ÷ Σw) with w = 1/s² (FunnelPlotR's ``tau_func``).
    """
    phi, tau2, count = np.full(n_groups, np.nan), np.zeros(n_groups), np.zeros(n_groups, dtype=np.int64)
    ok = np.isfinite(z) & (np.abs(z) < SENTINEL_Z) & np.isfinite(s) & (s > 0)
    keys, counts, q = group_quantiles(groups[ok], z[ok], (trim, 1.0 - trim))
    if len(keys) == 0:
        return phi, tau2, count
    low, high = np.zeros(n_groups), np.zeros(n_groups)
    low[keys], high[keys] = q[:, 0], q[:, 1]
    g, zz, w = groups[ok], z[ok], 1.0 / s[ok] ** 2
    wz = np.clip(zz, low[g], high[g])
    n = np.bincount(g, minlength=n_groups).astype(float)
    sum_z2 = np.bincount(g, weights=wz * wz, minlength=n_groups)
    sum_w = np.bincount(g, weights=w, minlength=n_groups)
    sum_w2 = np.bincount(g, weights=w * w, minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        phi_all = sum_z2 / n
        spread = sum_w - sum_w2 / sum_w
        tau_all = np.where((n * phi_all < n - 1) | (n < 2) | ~(spread > 0), 0.0,
                           np.maximum(0.0, (n * phi_all - (n - 1)) / spread))
    phi[keys], tau2[keys], count[keys] = phi_all[keys], tau_all[keys], counts
    return phi, tau2, count


def funnel_limits(funnel: str, target: float, den: np.ndarray, tau2: float, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper funnel limits on the rate's own scale at each denominator ``den``:
    t ± z·√(s² + τ²) on the funnel scale, transformed back (sin² for a proportion, clipped to
    0..1; target × exp(·) for a count per unit)."""
    den = np.asarray(den, dtype=float)
    if funnel == "binomial":
        t = math.asin(math.sqrt(min(max(target, 0.0), 1.0)))
        half = z * np.sqrt(1.0 / (4.0 * den) + tau2)
        return np.sin(np.clip(t - half, 0.0, math.pi / 2)) ** 2, np.sin(np.clip(t + half, 0.0, math.pi / 2)) ** 2
    with np.errstate(divide="ignore"):
        half = z * np.sqrt(1.0 / (target * den) + tau2)
    return target * np.exp(-half), target * np.exp(half)


def rate_se(rate_sum: np.ndarray, rate_sq: np.ndarray, rate_months: np.ndarray) -> np.ndarray:
    """Standard error of the window's mean monthly rate, from Σ monthly rates, Σ of their squares
    and the number of months with a rate: sample standard deviation ÷ √months. NaN with fewer
    than two months (no variation to measure)."""
    m = rate_months.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        variance = np.maximum(0.0, (rate_sq - rate_sum * rate_sum / m) / (m - 1.0))
        se = np.sqrt(variance / m)
    se[m < 2] = np.nan
    return se
