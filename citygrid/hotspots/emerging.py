"""Emerging hot spots: a space-time Gi* per area and time bin, a Mann-Kendall trend on each area's z-series,
and the 17 categories of ArcGIS's Emerging Hot Spot Analysis.

Space-time Gi* (as ArcGIS's space-time cube)
--------------------------------------------
The cube holds ``n`` areas x ``T`` bins (months or weeks, local time). Bin ``(i, t)``'s neighbourhood is every
bin ``(j, t')`` with ``j`` the area ``i`` itself or one of its spatial neighbours and ``t - K <= t' <= t``
(ArcGIS's "neighbourhood time step": neighbours in space within the K previous time steps, not only the same
area's past); ``K`` defaults to 1. Binary weights; Gi* is computed over the whole cube: ``n T`` observations,
the mean and variance of all bins (the esda formula of ``gistar`` on ``weights.space_time``, which the test
and the bench compare against). Bin ``(i, t)`` is a significant hot (cold) spot when its two-sided normal
p-value is below ``alpha`` (default 0.05) — after the Benjamini-Hochberg correction over all bins of the cube
when ``fdr`` (the default, as ArcGIS corrects its cube) — and its z is positive (negative).

Trend: the Mann-Kendall test on each area's z-series (vectorised here; identical to
``pymannkendall.original_test``: ties corrected, continuity corrected, two-sided, significant when
``|Z| > Phi^-1(1 - alpha / 2)``).

Categories (ArcGIS's PATTERN / CATEGORY codes; hot shown, each cold twin the same with cold for hot)
-----------------------------------------------------------------------------------------------
With ``H`` the number of hot bins, ``C`` of cold bins, "90 %" meaning ``H >= 0.9 T``, and the final bin being the
last one:

* 1 New Hot Spot: the final bin is hot and no earlier bin was significant.
* 2 Consecutive Hot Spot: a single uninterrupted run of at least two hot bins ends at the final bin, no
  significant bin before it, and under 90 % hot.
* 3 Intensifying Hot Spot: at least 90 % hot, the final bin hot, and a significant increasing trend in z.
* 4 Persistent Hot Spot: at least 90 % hot, the final bin hot, and no significant trend.
* 5 Diminishing Hot Spot: at least 90 % hot, the final bin hot, and a significant decreasing trend.
* 6 Sporadic Hot Spot: the final bin hot, under 90 % hot, hot bins also before the final run, never cold.
* 7 Oscillating Hot Spot: the final bin hot, under 90 % hot, and at least one earlier cold bin.
* 8 Historical Hot Spot: the final bin not hot, yet at least 90 % of the bins hot.
* -1 … -8: the cold twins. 0 No Pattern Detected: none of these.

Where the words allow two readings we decide, and say so: (a) the final bin decides the side — a location whose
final bin is hot gets a hot category even if 90 % of its bins were cold (ArcGIS's "historical cold" and
"oscillating hot" both fit it; it is oscillating hot); (b) an earlier significant bin of the other side makes the
location oscillating, never new or consecutive (new and consecutive mean "never significant before"); (c) a
location at least 90 % hot whose final bin is not hot is historical, never persistent.

Where R's sfdep (``emerging_hotspot_analysis``) departs from these rules
-------------------------------------------------------------------------
1. Its bins: a Gi* per time slice (each slice's own mean and variance) with row-standardised weights and
   permutation p-values at 0.01, not one cube-wide Gi* with binary weights and FDR-corrected normal p-values.
2. Persistent: it neither asks for the final bin nor tests historical first, so a location 90 % hot whose
   final bin is not hot and has no trend is persistent there, historical here.
3. Historical: it asks for a negative final z, not merely a final bin that is not a significant hot spot.
4. Intensifying: it counts every significant bin, hot or cold, towards the 90 %.
5. Sporadic: it does not ask for the final bin to be hot (ArcGIS's definition does).
6. Oscillating hot: it accepts exactly 90 % hot where ArcGIS says less than 90 %.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.stats import norm

from citygrid.hotspots.gistar import fdr_cutoff, normal_p

__all__ = ["CATEGORIES", "Emerging", "analyse", "category", "classify", "mann_kendall", "space_time_z"]

CATEGORIES: dict[int, str] = {
    1: "New Hot Spot", 2: "Consecutive Hot Spot", 3: "Intensifying Hot Spot", 4: "Persistent Hot Spot",
    5: "Diminishing Hot Spot", 6: "Sporadic Hot Spot", 7: "Oscillating Hot Spot", 8: "Historical Hot Spot",
    -1: "New Cold Spot", -2: "Consecutive Cold Spot", -3: "Intensifying Cold Spot", -4: "Persistent Cold Spot",
    -5: "Diminishing Cold Spot", -6: "Sporadic Cold Spot", -7: "Oscillating Cold Spot", -8: "Historical Cold Spot",
    0: "No Pattern Detected",
}


@dataclass(frozen=True)
class Emerging:
    """The analysis of a cube of ``n`` areas x ``T`` bins.

    Attributes
    ----------
    z, p : (n, T) space-time Gi* z-scores and two-sided p-values. hot, cold : (n, T) significant bins.
    trend_z, trend_p : (n,) Mann-Kendall Z and p of each z-series; tau : Kendall's tau.
    category : (n,) the codes of ``CATEGORIES``.
    """

    z: np.ndarray
    p: np.ndarray
    hot: np.ndarray
    cold: np.ndarray
    trend_z: np.ndarray
    trend_p: np.ndarray
    tau: np.ndarray
    category: np.ndarray


def space_time_z(counts: np.ndarray, w: sp.csr_matrix, k: int = 1) -> np.ndarray:
    """Space-time Gi* z-scores of ``counts`` (n areas x T bins) with spatial weights ``w`` (binary, zero
    diagonal) and ``k`` previous bins: esda's Gi* formula over the cube without building its weights."""
    y = np.asarray(counts, dtype=float)
    n, bins = y.shape
    total_n = n * bins
    spatial = w @ y + y  # each bin's area plus its spatial neighbours, same bin
    window = np.cumsum(spatial, axis=1)
    lag = window.copy()
    if k + 1 < bins:
        lag[:, k + 1:] -= window[:, :-(k + 1)]
    steps = np.minimum(np.arange(bins), k) + 1.0
    card = (np.diff(w.indptr).astype(float) + 1.0)[:, None] * steps[None, :]
    total = y.sum()
    mean = total / total_n
    variance = (y * y).sum() / total_n - mean * mean
    if total_n < 2 or total == 0 or variance <= 1e-12 * max(1.0, mean * mean):
        return np.zeros_like(y)
    g = lag / total
    var_g = card * (total_n - card) / (total_n - 1) / total_n**2 * variance / mean**2
    return (g - card / total_n) / np.sqrt(var_g)


def mann_kendall(z: np.ndarray, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mann-Kendall test of each row of ``z`` (n x T): (Z, p, significant, tau), as
    ``pymannkendall.original_test`` computes them row by row."""
    x = np.asarray(z, dtype=float)
    n_rows, t = x.shape
    s = np.zeros(n_rows)
    for lag in range(1, t):
        s += np.sign(x[:, lag:] - x[:, :-lag]).sum(axis=1)
    var_s = (t * (t - 1) * (2 * t + 5) - _tie_terms(x)) / 18.0
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = np.where(s > 0, (s - 1) / np.sqrt(var_s), np.where(s < 0, (s + 1) / np.sqrt(var_s), 0.0))
    stat = np.nan_to_num(stat)
    p = 2 * (1 - norm.cdf(np.abs(stat)))
    significant = np.abs(stat) > norm.ppf(1 - alpha / 2)
    tau = s / (0.5 * t * (t - 1)) if t > 1 else np.zeros(n_rows)
    return stat, p, significant, tau


def _tie_terms(x: np.ndarray) -> np.ndarray:
    """Per row, the sum over groups of equal values of ``t (t - 1) (2 t + 5)``."""
    ordered = np.sort(x, axis=1)
    n_rows, t = x.shape
    starts = np.ones((n_rows, t), dtype=bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    group = np.cumsum(starts, axis=1) - 1
    sizes = np.zeros((n_rows, t))
    np.add.at(sizes, (np.repeat(np.arange(n_rows), t), group.ravel()), 1.0)
    return (sizes * (sizes - 1) * (2 * sizes + 5)).sum(axis=1)


def classify(hot: np.ndarray, cold: np.ndarray, trend_z: np.ndarray, trend_significant: np.ndarray) -> np.ndarray:
    """The category code of each row (n x T significant hot / cold bins; the trend of its z-series), by the
    rules of the module docstring, for all rows at once."""
    hot = np.asarray(hot, dtype=bool)
    cold = np.asarray(cold, dtype=bool)
    t = hot.shape[1]
    out = np.zeros(hot.shape[0], dtype=int)
    up = trend_significant & (trend_z > 0)
    down = trend_significant & (trend_z < 0)
    # Hot side: the final bin hot, or 90 % hot with the final bin not cold; the cold side mirrors it.
    hot_side = hot[:, -1] | (~cold[:, -1] & (10 * hot.sum(axis=1) >= 9 * t))
    cold_side = ~hot_side & (cold[:, -1] | (10 * cold.sum(axis=1) >= 9 * t))
    out[hot_side] = _side(hot, cold, up, down, hot_side)
    out[cold_side] = -_side(cold, hot, down, up, cold_side)
    return out


def _side(same: np.ndarray, other: np.ndarray, rising: np.ndarray, falling: np.ndarray,
          rows: np.ndarray) -> np.ndarray:
    """Codes 1 … 8 for ``rows`` whose side is ``same`` (hot, or cold with the roles swapped)."""
    same, other, rising, falling = same[rows], other[rows], rising[rows], falling[rows]
    t = same.shape[1]
    count = same.sum(axis=1)
    final = same[:, -1]
    mostly = 10 * count >= 9 * t
    run = _final_run(same)
    codes = np.where(~final, 8, np.where(rising, 3, np.where(falling, 5, 4)))  # at least 90 %
    fewer = np.where(other.any(axis=1), 7,
                     np.where(count == 1, 1, np.where((run >= 2) & (run == count), 2, 6)))
    return np.where(mostly, codes, fewer)


def _final_run(flags: np.ndarray) -> np.ndarray:
    """Length of the run of True that ends at each row's last bin (0 when the last bin is False)."""
    reversed_flags = flags[:, ::-1]
    first_false = np.where(~reversed_flags.any(axis=1) | reversed_flags.all(axis=1), flags.shape[1],
                           np.argmax(~reversed_flags, axis=1))
    return np.where(flags[:, -1], first_false, 0)


def category(hot: np.ndarray, cold: np.ndarray, trend_z: float, trend_significant: bool) -> int:
    """The category code of one location, written out rule by rule (the plain reference ``classify`` is
    tested against; the 17 constructed series of the tests go through both)."""
    hot, cold = list(map(bool, hot)), list(map(bool, cold))
    t = len(hot)
    if hot[-1] or (not cold[-1] and 10 * sum(hot) >= 9 * t):
        return _one_side(hot, cold, trend_z, trend_significant)
    if cold[-1] or 10 * sum(cold) >= 9 * t:
        return -_one_side(cold, hot, -trend_z, trend_significant)
    return 0


def _one_side(same: list[bool], other: list[bool], trend_z: float, trend_significant: bool) -> int:
    """``category`` for one side (hot; cold with the roles and the trend's sign swapped)."""
    t, count = len(same), sum(same)
    if 10 * count >= 9 * t:
        if not same[-1]:
            return 8
        if trend_significant:
            return 3 if trend_z > 0 else 5
        return 4
    if any(other):
        return 7
    if count == 1:
        return 1
    run = 0
    for flag in reversed(same):
        if not flag:
            break
        run += 1
    return 2 if run >= 2 and run == count else 6


def analyse(counts: np.ndarray, w: sp.csr_matrix, *, k: int = 1, alpha: float = 0.05,
            fdr: bool = True) -> Emerging:
    """Emerging hot spots of ``counts`` (n areas x T bins, oldest first) over spatial weights ``w``."""
    z = space_time_z(counts, w, k)
    p = normal_p(z)
    cut = fdr_cutoff(p.ravel(), alpha) if fdr else alpha
    significant = p < cut
    hot, cold = significant & (z > 0), significant & (z < 0)
    trend_z, trend_p, trend_significant, tau = mann_kendall(z, alpha)
    return Emerging(z=z, p=p, hot=hot, cold=cold, trend_z=trend_z, trend_p=trend_p, tau=tau,
                    category=classify(hot, cold, trend_z, trend_significant))
