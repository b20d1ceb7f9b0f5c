"""Kernel density of cases as a raster in the deployment CRS (metres).

Binned KDE: points are counted into the cells of the output grid (linear binning would be marginally more
exact; simple binning keeps the error below half a cell, tested against an exact evaluation), then convolved
with the kernel sampled on the same grid by FFT. Memory depends on the grid, not on the number of points
(points are binned in chunks), so 10 million points cost what one million do. Output values are densities in
cases per km² (the kernel integrates to one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.signal import fftconvolve

from citygrid.errors import InvalidInput

KERNELS = ("gaussian", "epanechnikov", "quartic")
MAX_CELLS = 40_000_000
CHUNK = 2_000_000
# What one HTTP request may cost (``check_request_cost``). Measured on 2 cores (busy with other work), the
# largest allowed request over Chaoyang (29 m cells, 997,632 of them, a 2,900 m bandwidth) takes 0.2–0.35 s to
# compute and 0.15–0.2 s to encode as PNG, 0.45–0.75 s in all with its 20,000 points; the default 50 m / 300 m
# about 0.25 s. Unbounded, 10 m cells with a 5 km bandwidth took 8 s.
MAX_REQUEST_CELLS = 1_000_000
MAX_BANDWIDTH_CELLS = 100


@dataclass
class DensityRaster:
    """``values[row, col]`` (row 0 is the north edge) in cases/km²; ``x0``/``y1`` = west/north edges."""

    values: np.ndarray
    x0: float
    y1: float
    cell_m: float
    bandwidth_m: float
    kernel: str
    epsg: int
    points: int
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        rows, cols = self.values.shape
        return self.x0, self.y1 - rows * self.cell_m, self.x0 + cols * self.cell_m, self.y1


def _kernel(kind: str, bandwidth: float, cell: float) -> np.ndarray:
    """The kernel sampled at cell centres, normalised so that it integrates to 1 (per m²)."""
    reach = bandwidth * (4.0 if kind == "gaussian" else 1.0)
    n = int(np.ceil(reach / cell))
    offsets = np.arange(-n, n + 1) * cell
    dx, dy = np.meshgrid(offsets, offsets)
    r2 = (dx**2 + dy**2) / bandwidth**2
    if kind == "gaussian":
        weights = np.exp(-0.5 * r2)
    elif kind == "epanechnikov":
        weights = np.clip(1 - r2, 0, None)
    else:
        weights = np.clip(1 - r2, 0, None) ** 2
    total = weights.sum() * cell * cell
    if total == 0:
        raise InvalidInput("the bandwidth is too small for the cell size", field="bandwidth_m")
    return weights / total


def check_request_cost(bounds: tuple[float, float, float, float], cell_m: float, bandwidth_m: float, *,
                       max_cells: int = MAX_REQUEST_CELLS, max_bandwidth_cells: float = MAX_BANDWIDTH_CELLS) -> None:
    """Refuse a raster too costly for one request, naming the limit and the value that would fit.

    The cost of ``kde`` grows with the cells of the raster and with the size of the kernel in cells (the FFT
    runs over the raster padded by the kernel), so both are capped: at most ``max_cells`` cells over
    ``bounds`` and a bandwidth of at most ``max_bandwidth_cells`` cells.

    Parameters
    ----------
    bounds : (minx, miny, maxx, maxy) of the raster, metres in the deployment CRS (e.g. EPSG:4548).
    cell_m, bandwidth_m : as for ``kde``.
    max_cells, max_bandwidth_cells : the limits.

    Raises
    ------
    InvalidInput
        On ``cell_m`` (with the smallest cell size that fits) or ``bandwidth_m`` (with the largest bandwidth
        for this cell size).

    Examples
    --------
    >>> check_request_cost((0, 0, 25_000, 33_000), cell_m=50, bandwidth_m=300)
    >>> check_request_cost((0, 0, 25_000, 33_000), cell_m=10, bandwidth_m=300)
    Traceback (most recent call last):
    ...
    citygrid.errors.InvalidInput: cell_m 10 gives a 2500×3300 raster (8,250,000 cells); the limit is 1,000,000 \
cells per request: use cell_m of at least 29 m
    """
    minx, miny, maxx, maxy = bounds
    width, height = max(maxx - minx, 0.0), max(maxy - miny, 0.0)

    def cells(size: float) -> int:
        return int(np.ceil(width / size)) * int(np.ceil(height / size))

    if cells(cell_m) > max_cells:
        fits = max(1, int(np.ceil(np.sqrt(width * height / max_cells))))
        while cells(fits) > max_cells:
            fits += 1
        cols, rows = int(np.ceil(width / cell_m)), int(np.ceil(height / cell_m))
        raise InvalidInput(f"cell_m {cell_m:g} gives a {cols}×{rows} raster ({cols * rows:,} cells); the limit is "
                           f"{max_cells:,} cells per request: use cell_m of at least {fits} m", field="cell_m")
    if bandwidth_m > max_bandwidth_cells * cell_m:
        raise InvalidInput(f"bandwidth_m {bandwidth_m:g} is {bandwidth_m / cell_m:g} cells of {cell_m:g} m; the limit "
                           f"is {max_bandwidth_cells:g} cells: use bandwidth_m of at most "
                           f"{max_bandwidth_cells * cell_m:g} m, or a larger cell_m", field="bandwidth_m")


def kde(x: np.ndarray, y: np.ndarray, bounds: tuple[float, float, float, float], *, cell_m: float = 50.0,
        bandwidth_m: float = 300.0, kernel: str = "gaussian", epsg: int = 0) -> DensityRaster:
    """Density of the points (x, y in EPSG:``epsg``, metres) on a grid of ``cell_m`` over ``bounds``.

    Raises ``InvalidInput`` for a kernel it does not know, non-positive sizes or a grid over 40 million cells.
    """
    if kernel not in KERNELS:
        raise InvalidInput(f"kernel must be one of {', '.join(KERNELS)}", field="kernel")
    if not (1 <= cell_m <= 5000):
        raise InvalidInput("cell_m must be between 1 and 5000 m", field="cell_m")
    if not (cell_m <= bandwidth_m <= 20_000):
        raise InvalidInput("bandwidth_m must be at least one cell and at most 20 km", field="bandwidth_m")
    minx, miny, maxx, maxy = bounds
    cols, rows = int(np.ceil((maxx - minx) / cell_m)), int(np.ceil((maxy - miny) / cell_m))
    if rows * cols > MAX_CELLS or rows <= 0 or cols <= 0:
        raise InvalidInput(f"a {cols}×{rows} grid is too large; raise cell_m", field="cell_m")
    counts = np.zeros((rows, cols), dtype=np.float64)
    n = 0
    for start in range(0, len(x), CHUNK):
        cx = np.floor((np.asarray(x[start:start + CHUNK]) - minx) / cell_m).astype(np.int64)
        cy = np.floor((maxy - np.asarray(y[start:start + CHUNK])) / cell_m).astype(np.int64)
        ok = (cx >= 0) & (cx < cols) & (cy >= 0) & (cy < rows)
        counts += np.bincount(cy[ok] * cols + cx[ok], minlength=rows * cols).reshape(rows, cols)
        n += int(ok.sum())
    density = fftconvolve(counts, _kernel(kernel, bandwidth_m, cell_m), mode="same")
    density = np.clip(density, 0, None) * 1e6  # per m² -> per km²
    density[density < density.max() * 1e-9] = 0.0  # FFT round-off far from any point
    tags = {"cell_m": f"{cell_m:g}", "bandwidth_m": f"{bandwidth_m:g}", "kernel": kernel, "points": str(n),
            "units": "cases per km2", "method": "binned KDE, FFT convolution (citygrid)"}
    return DensityRaster(values=density.astype(np.float32), x0=minx, y1=maxy, cell_m=cell_m,
                         bandwidth_m=bandwidth_m, kernel=kernel, epsg=epsg, points=n, tags=tags)


def write_geotiff(raster: DensityRaster, path: Path, extra_tags: dict[str, Any] | None = None) -> Path:
    """A single-band float32 GeoTIFF in the raster's EPSG with its parameters as tags."""
    import rasterio
    from rasterio.transform import from_origin

    rows, cols = raster.values.shape
    with rasterio.open(path, "w", driver="GTiff", height=rows, width=cols, count=1, dtype="float32",
                       crs=f"EPSG:{raster.epsg}", transform=from_origin(raster.x0, raster.y1, raster.cell_m,
                                                                         raster.cell_m),
                       compress="deflate", nodata=None) as dst:
        dst.write(raster.values, 1)
        dst.update_tags(**raster.tags, **{k: str(v) for k, v in (extra_tags or {}).items()})
    return path


def to_png(raster: DensityRaster) -> bytes:
    """A transparent-to-red PNG of the density (alpha grows with density; cells below 2 % of the peak are clear)."""
    import io

    from PIL import Image

    values = raster.values
    peak = float(values.max()) if values.size else 0.0
    scaled = np.zeros(values.shape) if peak <= 0 else np.sqrt(values / peak)
    rgba = np.zeros((*values.shape, 4), dtype=np.uint8)
    rgba[..., 0] = 215
    rgba[..., 1] = (200 * (1 - scaled)).astype(np.uint8)
    rgba[..., 2] = 40
    rgba[..., 3] = np.where(scaled > np.sqrt(0.02), (40 + 190 * scaled).astype(np.uint8), 0)
    buffer = io.BytesIO()
    # optimize=True would shrink the file by about a seventh and cost ten times as long (1.9 s for 1 M cells)
    Image.fromarray(rgba, "RGBA").save(buffer, format="PNG")
    return buffer.getvalue()
