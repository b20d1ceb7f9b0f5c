"""Spatial and space-time weights for Gi*: binary, no self weight (Gi* adds the focal grid itself).

Built with libpysal from polygons in the deployment CRS (metres): queen contiguity (two areas sharing a vertex
or an edge are neighbours) or a distance band between the areas' centroids. The result is a ``scipy.sparse``
CSR matrix whose row ``i`` holds a 1 for every neighbour of area ``i`` (in the order of the input).

An area with no neighbour (an island: a detached piece of a district, or nothing within the distance band)
keeps an empty row. Gi* then compares it with itself only: its self weight is its whole neighbourhood, so its
z-score says whether its own count is high or low against the mean (esda's ``G_Local`` does the same); with
permutations it is never significant (nothing to permute, ``gistar.permutation_p``). The count of such areas is
reported with every answer (``islands``).

Examples
--------
>>> import shapely
>>> squares = [shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1), shapely.box(5, 5, 6, 6)]
>>> queen(squares).toarray().astype(int).tolist()
[[0, 1, 0], [1, 0, 0], [0, 0, 0]]
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import shapely

__all__ = ["KINDS", "build", "distance_band", "islands", "queen", "space_time"]

KINDS = ("queen", "distance")


def queen(polygons: Sequence[shapely.Geometry]) -> sp.csr_matrix:
    """Queen contiguity of ``polygons`` (deployment CRS) as a binary CSR matrix with a zero diagonal."""
    from libpysal.weights import Queen

    if len(polygons) == 0:
        return sp.csr_matrix((0, 0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "not fully connected" / islands: reported by ``islands`` instead
        w = Queen.from_iterable(list(polygons))
    return _binary(w.sparse, len(polygons))


def distance_band(polygons: Sequence[shapely.Geometry], threshold_m: float) -> sp.csr_matrix:
    """Areas whose centroids (deployment CRS) lie within ``threshold_m`` metres of each other, as a binary CSR
    matrix with a zero diagonal."""
    from libpysal.weights import DistanceBand

    if len(polygons) == 0:
        return sp.csr_matrix((0, 0))
    centres = shapely.get_coordinates(shapely.centroid(np.asarray(polygons, dtype=object)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = DistanceBand(centres, threshold=threshold_m, binary=True, silence_warnings=True)
    return _binary(w.sparse, len(polygons))


def build(polygons: Sequence[shapely.Geometry], kind: str, distance_m: float | None = None) -> sp.csr_matrix:
    """``queen(polygons)`` or ``distance_band(polygons, distance_m)`` by ``kind`` (one of ``KINDS``)."""
    if kind == "queen":
        return queen(polygons)
    if kind == "distance":
        if distance_m is None or not np.isfinite(distance_m) or distance_m <= 0:
            raise ValueError("a distance band needs a positive threshold in metres")
        return distance_band(polygons, distance_m)
    raise ValueError(f"unknown weights {kind!r}; one of {KINDS}")


def islands(w: sp.csr_matrix) -> np.ndarray:
    """Indices of the areas with no neighbour in ``w``."""
    return np.flatnonzero(np.diff(w.indptr) == 0)


def space_time(w: sp.csr_matrix, bins: int, k: int) -> sp.csr_matrix:
    """Space-time weights of a cube of ``bins`` time bins over the areas of ``w`` (ArcGIS's neighbourhood time
    step): bin ``(i, t)`` neighbours ``(j, t')`` for every ``j`` that is ``i`` or a neighbour of ``i`` and every
    ``t - k <= t' <= t``, but not itself. Rows and columns run time-major: index ``t * n + i``.

    Binary, zero diagonal, shape ``(bins * n, bins * n)``; the reference the vectorised space-time Gi* of
    ``emerging`` is tested against (it never builds this matrix itself).
    """
    n = w.shape[0]
    band = sp.diags([np.ones(bins - d) for d in range(min(k, bins - 1) + 1)],
                    [-d for d in range(min(k, bins - 1) + 1)], shape=(bins, bins), format="csr")
    spatial = (w + sp.identity(n, format="csr")).tocsr()
    cube = sp.kron(band, spatial, format="csr")
    cube.setdiag(0)
    cube.eliminate_zeros()
    return cube


def _binary(matrix: sp.spmatrix, n: int) -> sp.csr_matrix:
    """``matrix`` as float 0/1 CSR, zero diagonal, shape ``(n, n)``."""
    out = sp.csr_matrix(matrix, shape=(n, n), dtype=float)
    out.data[:] = 1.0
    out.setdiag(0)
    out.eliminate_zeros()
    out.sort_indices()
    return out
