"""Kernel density raster: the binned FFT fast path against an exact evaluation, GeoTIFF tags, PNG, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from citygrid.errors import InvalidInput
from citygrid.spatial.analysis.density import check_request_cost, kde, to_png, write_geotiff


def exact_gaussian(x, y, cx, cy, bandwidth):
    d2 = (cx[:, None] - x[None, :]) ** 2 + (cy[:, None] - y[None, :]) ** 2
    return np.exp(-0.5 * d2 / bandwidth**2).sum(axis=1) / (2 * np.pi * bandwidth**2) * 1e6


def test_binned_kde_matches_exact_evaluation():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(2000, 300, 3000), rng.normal(6000, 500, 2000)])
    y = np.concatenate([rng.normal(3000, 300, 3000), rng.normal(5000, 400, 2000)])
    raster = kde(x, y, (0, 0, 8000, 8000), cell_m=25, bandwidth_m=250, epsg=4548)
    rows, cols = raster.values.shape
    cx = raster.x0 + (np.arange(cols) + 0.5) * 25
    cy = raster.y1 - (np.arange(rows) + 0.5) * 25
    gx, gy = np.meshgrid(cx, cy)
    exact = exact_gaussian(x, y, gx.ravel(), gy.ravel(), 250).reshape(rows, cols)
    peak = exact.max()
    mask = exact > 0.01 * peak
    assert np.max(np.abs(raster.values[mask] - exact[mask]) / exact[mask]) < 0.05
    # Integrates to the number of points (per km² × km² per cell).
    assert raster.values.sum() * (25 / 1000) ** 2 == pytest.approx(5000, rel=0.01)


@pytest.mark.parametrize("kernel", ["epanechnikov", "quartic"])
def test_compact_kernels_keep_the_mass(kernel):
    x, y = np.full(100, 1000.0), np.full(100, 1000.0)
    raster = kde(x, y, (0, 0, 2000, 2000), cell_m=10, bandwidth_m=200, kernel=kernel)
    assert raster.values.sum() * 1e-4 == pytest.approx(100, rel=0.01)
    assert raster.values[0, 0] == 0


def test_geotiff_has_crs_transform_and_tags(tmp_path):
    import rasterio

    raster = kde(np.array([500.0]), np.array([500.0]), (0, 0, 1000, 1000), cell_m=50, bandwidth_m=100, epsg=4548)
    write_geotiff(raster, tmp_path / "d.tif", {"district": "110105"})
    with rasterio.open(tmp_path / "d.tif") as src:
        assert src.crs.to_epsg() == 4548 and src.res == (50.0, 50.0) and src.bounds.left == 0
        tags = src.tags()
        assert tags["bandwidth_m"] == "100" and tags["kernel"] == "gaussian" and tags["district"] == "110105"
    assert to_png(raster)[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(("kwargs", "field"), [({"kernel": "box"}, "kernel"), ({"cell_m": 0}, "cell_m"),
                                               ({"bandwidth_m": 10, "cell_m": 50}, "bandwidth_m"),
                                               ({"cell_m": 1, "bandwidth_m": 5}, "cell_m")])
def test_bad_parameters(kwargs, field):
    with pytest.raises(InvalidInput) as err:
        kde(np.zeros(1), np.zeros(1), (0, 0, 100_000, 100_000), **kwargs)
    assert err.value.details[0]["field"] == field


CHAOYANG = (444063.6, 4408381.1, 469163.6, 4441773.3)  # the district's bounds in EPSG:4548, metres


def test_request_cost_allows_the_defaults_and_the_largest_fitting_requests():
    check_request_cost(CHAOYANG, 50, 300)
    check_request_cost(CHAOYANG, 29, 2900)  # 866 × 1152 = 997,632 cells, a bandwidth of 100 cells
    check_request_cost(CHAOYANG, 50, 5000)


@pytest.mark.parametrize(("cell_m", "bandwidth_m", "field", "needles", "fits", "over"), [
    # too many cells: names the smallest cell size that fits, and that size (not one metre less) is taken
    (10, 300, "cell_m", ["1,000,000 cells", "at least 29 m"], (29, 300), (28, 300)),
    # a bandwidth of too many cells: names the largest that fits, and that one (not one cell more) is taken
    (30, 5000, "bandwidth_m", ["100 cells", "at most 3000 m"], (30, 3000), (30, 3030)),
], ids=["cells", "bandwidth"])
def test_request_cost_refuses_and_names_what_fits(cell_m, bandwidth_m, field, needles, fits, over):
    with pytest.raises(InvalidInput) as err:
        check_request_cost(CHAOYANG, cell_m, bandwidth_m)
    assert err.value.details[0]["field"] == field
    assert all(needle in err.value.message for needle in needles), err.value.message
    check_request_cost(CHAOYANG, *fits)
    with pytest.raises(InvalidInput, match=field):
        check_request_cost(CHAOYANG, *over)
