"""Getis-Ord Gi* over areas: z-scores, conditional-permutation pseudo p-values, FDR, ArcGIS's classes.

The statistic is esda's ``G_Local(y, w, transform="B", star=True)`` written over a sparse matrix: binary
weights, the focal area included with weight 1, so area ``i``'s neighbourhood holds ``c_i = k_i + 1`` areas and

    G_i = sum_j w*_ij y_j / sum_j y_j,   E[G_i] = c_i / n,
    V[G_i] = c_i (n - c_i) / (n - 1) / n^2 * s^2 / ybar^2,   z_i = (G_i - E[G_i]) / sqrt(V[G_i])

with ``ybar`` and ``s^2`` the mean and population variance of ``y`` over all ``n`` areas. The test checks
``max |z - esda z| <= 1e-6`` on the Guancheng unit grids. Where every area holds the same count the variance
is zero: every z is 0 and nothing is significant (esda answers NaN there).

Pseudo p-values by conditional permutation, as esda's ``crand`` (its "directed" alternative, the default of
``G_Local``): for each area its own value is held and ``k_i`` values drawn without replacement from the other
``n - 1`` areas make up the neighbourhood, ``permutations`` times (999 by default, seeded); with ``L`` the number
of draws at least as large as the observed sum, the folded count ``m = min(L, permutations - L)`` gives
``p_sim = (m + 1) / (permutations + 1)`` — one-sided. esda draws through numba's random stream, so equality is
statistical (the test compares the share of areas significant at 0.05 and a Kolmogorov-Smirnov statistic).
The classes use a two-sided p: ``min(1, 2 p_sim)`` with permutations, else the normal ``2 (1 - Phi(|z|))``.
An island (no neighbour) has nothing to permute: its ``p_sim`` is 1, where esda's folding answers the smallest
p, ``1 / (permutations + 1)``, for a statistic that every draw equals.

False-discovery rate: Benjamini-Hochberg through ``esda.fdr``, applied as ArcGIS's Hot Spot Analysis applies
its FDR option, once per confidence level (90, 95, 99 %): an area is significant at level ``a`` when its p is
below the BH cut-off of all areas' p-values at ``a``.

Classes (ArcGIS's ``Gi_Bin``): 3 / 2 / 1 hot at 99 / 95 / 90 % confidence, 0 not significant, -1 / -2 / -3
cold at 90 / 95 / 99 %; the sign is the z-score's.

Examples
--------
>>> import numpy as np, scipy.sparse as sp
>>> w = sp.csr_matrix(np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=float))
>>> np.round(z_scores(np.array([1.0, 2.0, 6.0]), w), 4).tolist()
[-1.0954, 0.0, 1.0954]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy import stats

__all__ = ["BIN_LABELS", "LEVELS", "GiStar", "analyse", "classes", "fdr_cutoff", "normal_p", "permutation_p",
           "z_scores"]

LEVELS = ((3, 0.01), (2, 0.05), (1, 0.10))  # Gi_Bin -> the p below which an area reaches it
BIN_LABELS = {3: "Hot Spot - 99% Confidence", 2: "Hot Spot - 95% Confidence", 1: "Hot Spot - 90% Confidence",
              0: "Not Significant", -1: "Cold Spot - 90% Confidence", -2: "Cold Spot - 95% Confidence",
              -3: "Cold Spot - 99% Confidence"}
# Areas per permutation chunk: a chunk holds permutations x areas sums (999 x 2048 float64: 16 MB).
_CHUNK_SITES = 2048


@dataclass(frozen=True)
class GiStar:
    """Gi* of every area, in the input's order.

    Attributes
    ----------
    z : z-scores (esda's ``Zs``). g : the statistic (esda's ``Gs``).
    neighbours : ``k_i``, neighbours besides the area itself.
    p_sim : one-sided pseudo p-values (None without permutations).
    p : the two-sided p-value the classes are read from.
    gi_bin : ArcGIS's class, -3 … 3. significant : p below the (FDR) cut-off at ``alpha``.
    """

    z: np.ndarray
    g: np.ndarray
    neighbours: np.ndarray
    p_sim: np.ndarray | None
    p: np.ndarray
    gi_bin: np.ndarray
    significant: np.ndarray


def _moments(y: np.ndarray, w: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lag with the focal value, G, z) of Gi* with binary weights ``w`` (zero diagonal) plus the self weight."""
    y = np.asarray(y, dtype=float)
    n = len(y)
    lag = w @ y + y
    total = y.sum()
    card = np.diff(w.indptr).astype(float) + 1.0
    mean = total / n if n else 0.0
    variance = (y * y).sum() / n - mean * mean if n else 0.0
    if n < 2 or total == 0 or variance <= 1e-12 * max(1.0, mean * mean):
        return lag, np.zeros(n) if total == 0 else lag / total, np.zeros(n)
    g = lag / total
    expected = card / n
    var_g = card * (n - card) / (n - 1) / n**2 * variance / mean**2
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(var_g > 0, (g - expected) / np.sqrt(var_g), 0.0)
    return lag, g, z


def z_scores(y: np.ndarray, w: sp.csr_matrix) -> np.ndarray:
    """Gi* z-scores of ``y`` with binary weights ``w`` (zero diagonal; the focal area is added)."""
    return _moments(y, w)[2]


def normal_p(z: np.ndarray) -> np.ndarray:
    """Two-sided p-values of z-scores under the normal approximation."""
    return 2.0 * stats.norm.sf(np.abs(z))


def _draws(n: int, k_max: int, permutations: int, rng: np.random.Generator) -> np.ndarray:
    """``permutations`` rows of ``k_max`` distinct indices into the ``n - 1`` other areas (esda's
    ``vec_permutations``: one set of draws shared by every area, each read past the area itself)."""
    return np.stack([rng.choice(n - 1, size=k_max, replace=False) for _ in range(permutations)])


def permutation_p(y: np.ndarray, w: sp.csr_matrix, permutations: int = 999, seed: int = 2026) -> np.ndarray:
    """One-sided ("directed") pseudo p-values of Gi* by conditional permutation (see the module docstring).

    Vectorised instead of esda's loop over areas: draw ``d`` of a row stands for ``y[d]`` when ``d`` is below
    the area's own index and ``y[d + 1]`` otherwise, so for all areas with ``k`` neighbours a row's permuted sum
    is the sum of its ``y[d + 1]`` plus the differences of the draws below the area — one sorted search per
    (row, area) instead of a gather of ``k`` values.
    """
    y = np.asarray(y, dtype=float)
    n = len(y)
    card = np.diff(w.indptr)
    if n < 2 or permutations < 1:
        return np.ones(n)
    observed = w @ y + y
    larger = np.zeros(n)
    k_max = int(card.max())
    if k_max > 0:
        draws = _draws(n, k_max, permutations, np.random.default_rng(seed))
        padded = np.append(y, 0.0)
        below, above = padded[draws], padded[draws + 1]
        for k in np.unique(card[card > 0]):
            sites = np.flatnonzero(card == k)
            larger[sites] = _count_larger(y, observed, sites, draws[:, :k], below[:, :k], above[:, :k])
    folded = np.minimum(larger, permutations - larger)
    p = (folded + 1.0) / (permutations + 1.0)
    p[card == 0] = 1.0  # an island has nothing to permute: never significant by permutation (esda: 1/(p+1))
    return p


def _count_larger(y: np.ndarray, observed: np.ndarray, sites: np.ndarray, draws: np.ndarray, below: np.ndarray,
                  above: np.ndarray) -> np.ndarray:
    """For each of ``sites`` (all with ``k`` neighbours, ascending), how many of the permuted sums — its own
    value plus the ``k`` drawn others of each row of ``draws`` — reach its observed sum."""
    permutations, k = draws.shape
    order = np.argsort(draws, axis=1)
    ordered = np.take_along_axis(draws, order, axis=1)
    gained = np.cumsum(np.take_along_axis(below - above, order, axis=1), axis=1)
    gained = np.concatenate([np.zeros((permutations, 1)), gained], axis=1)
    base = above.sum(axis=1)
    rows = np.arange(permutations)[:, None]
    keys = (ordered + rows * len(y)).ravel()  # every row's sorted draws, rows one after another
    out = np.empty(len(sites))
    for start in range(0, len(sites), _CHUNK_SITES):
        chunk = sites[start:start + _CHUNK_SITES]
        found = np.searchsorted(keys, (chunk[None, :] + rows * len(y)).ravel()).reshape(permutations, -1)
        sums = base[:, None] + np.take_along_axis(gained, found - rows * k, axis=1) + y[chunk][None, :]
        # ties count as reached (esda's ``>=``); the tolerance absorbs the different order of the additions
        tolerance = 1e-9 * (np.abs(observed[chunk]) + 1.0)
        out[start:start + len(chunk)] = (sums >= observed[chunk][None, :] - tolerance[None, :]).sum(axis=0)
    return out


def fdr_cutoff(p: np.ndarray, alpha: float) -> float:
    """The Benjamini-Hochberg cut-off of ``p`` at ``alpha`` (``esda.fdr``): significant where ``p < cut-off``."""
    from esda import fdr

    return float(fdr(np.asarray(p, dtype=float), alpha)) if len(p) else alpha


def classes(z: np.ndarray, p: np.ndarray, *, fdr: bool) -> np.ndarray:
    """ArcGIS's Gi_Bin (-3 … 3) from z-scores and two-sided p-values, with or without the FDR correction."""
    level = np.zeros(len(z), dtype=int)
    for value, alpha in reversed(LEVELS):  # 90 % first, then 95 and 99 raise it
        cut = fdr_cutoff(p, alpha) if fdr else alpha
        level[p < cut] = value
    return np.sign(z).astype(int) * level


def analyse(y: np.ndarray, w: sp.csr_matrix, *, permutations: int = 999, seed: int = 2026, fdr: bool = False,
            alpha: float = 0.05) -> GiStar:
    """Gi* of ``y`` over weights ``w`` (binary, zero diagonal, the areas in ``y``'s order): z, p, classes.

    Parameters
    ----------
    permutations : conditional permutations for the pseudo p-values; 0 for the normal approximation.
    seed : the permutations' random seed (the same seed gives the same p-values).
    fdr : Benjamini-Hochberg per confidence level. alpha : the level of ``significant``.
    """
    y = np.asarray(y, dtype=float)
    _, g, z = _moments(y, w)
    p_sim = permutation_p(y, w, permutations, seed) if permutations else None
    p = np.minimum(1.0, 2.0 * p_sim) if p_sim is not None else normal_p(z)
    cut = fdr_cutoff(p, alpha) if fdr else alpha
    return GiStar(z=z, g=g, neighbours=np.diff(w.indptr), p_sim=p_sim, p=p, gi_bin=classes(z, p, fdr=fdr),
                  significant=(p < cut) & (z != 0))
