"""CRS choices and GCJ-02/BD-09 conversion, checked against two independent implementations."""

from __future__ import annotations

import math

import eviltransform
import numpy as np
import prcoords
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod

from citygrid.errors import InvalidInput
from citygrid.spatial import crs

GEOD = Geod(ellps="WGS84")
china_lon = st.floats(min_value=74.0, max_value=134.0)
china_lat = st.floats(min_value=19.0, max_value=52.0)


def metres(lon1, lat1, lon2, lat2) -> np.ndarray:
    return np.asarray(GEOD.inv(lon1, lat1, lon2, lat2)[2])


def random_points(seed: int, n: int, lon: tuple[float, float], lat: tuple[float, float]):
    """``n`` points drawn uniformly in the lon/lat box: two arrays (degrees)."""
    rng = np.random.default_rng(seed)
    return rng.uniform(*lon, n), rng.uniform(*lat, n)


def prcoords_of(transform, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reference library's ``transform`` of each point (it takes and returns (lat, lon)): lon and lat arrays."""
    ref = np.array([transform(prcoords.Coords(la, lo)) for lo, la in zip(lon, lat, strict=True)])
    return ref[:, 1], ref[:, 0]


def test_forward_matches_prcoords_exactly():
    lon, lat = random_points(7, 500, (74, 134), (19, 52))
    ours = crs.wgs84_to_gcj02(lon, lat)
    assert metres(*ours, *prcoords_of(prcoords.wgs_gcj, lon, lat)).max() < 1e-6


def test_inverse_matches_independent_inverses_within_half_a_metre():
    g_lon, g_lat = random_points(8, 500, (74, 134), (19, 52))
    ours = crs.gcj02_to_wgs84(g_lon, g_lat)
    evil = np.array([eviltransform.gcj2wgs_exact(la, lo) for lo, la in zip(g_lon, g_lat, strict=True)])
    assert metres(*ours, *prcoords_of(prcoords.gcj_wgs_bored, g_lon, g_lat)).max() < 0.5
    assert metres(ours[0], ours[1], evil[:, 1], evil[:, 0]).max() < 0.5


@settings(max_examples=200, deadline=None)
@given(china_lon, china_lat)
def test_round_trip_error_under_half_a_metre(lon, lat):
    g = crs.wgs84_to_gcj02(np.array([lon]), np.array([lat]))
    back = crs.gcj02_to_wgs84(*g)
    assert metres(back[0], back[1], [lon], [lat])[0] < 0.5


def test_offset_in_beijing_is_the_known_half_kilometre():
    # Chaoyang: GCJ-02 is ≈ 530 m east / 150 m north of WGS84 (data/README.md measured it).
    w = crs.gcj02_to_wgs84(np.array([116.4432]), np.array([39.9215]))
    east = metres(w[0], w[1], [116.4432], w[1])[0]
    north = metres(w[0], w[1], w[0], [39.9215])[0]
    assert 400 < east < 700 and 50 < north < 300


def test_outside_china_is_unchanged():
    lon, lat = np.array([2.35, -74.0]), np.array([48.85, 40.7])
    assert np.array_equal(crs.wgs84_to_gcj02(lon, lat)[0], lon)
    assert np.allclose(crs.gcj02_to_wgs84(lon, lat)[1], lat)


def test_bd09_matches_prcoords_and_round_trips():
    lon, lat = random_points(9, 200, (100, 120), (25, 45))
    bd = crs.gcj02_to_bd09(lon, lat)
    assert metres(*bd, *prcoords_of(prcoords.gcj_bd, lon, lat)).max() < 1e-3
    back = crs.bd09_to_gcj02(*bd)
    assert metres(back[0], back[1], lon, lat).max() < 0.01


def test_empty_arrays_pass_through():
    lon, lat = crs.gcj02_to_wgs84(np.array([]), np.array([]))
    assert lon.size == 0 and lat.size == 0


@pytest.mark.parametrize(("lon", "epsg"), [(116.45, 4548), (113.7, 4547), (121.47, 4549), (75.2, 4534), (134.9, 4554)])
def test_gauss_kruger_zone_by_longitude(lon, epsg):
    assert crs.gk3_epsg_for_longitude(lon) == epsg


def test_zone_outside_china_rejected_and_utm_suggested():
    with pytest.raises(InvalidInput):
        crs.gk3_epsg_for_longitude(2.3)
    assert crs.suggest_storage_epsg(2.35, 48.85) == 32631
    assert crs.suggest_storage_epsg(151.2, -33.9) == 32756


@pytest.mark.parametrize("text", ["gcj02", "GCJ-02", "bd09", "EPSG:4548", "4547", "wgs84", "cgcs2000"])
def test_parse_crs_accepts(text):
    assert crs.parse_crs(text).label


@pytest.mark.parametrize("text", ["", None, "EPSG:999999", "not a crs"])
def test_parse_crs_rejects_with_field(text):
    with pytest.raises(InvalidInput) as err:
        crs.parse_crs(text)
    assert err.value.details[0]["field"] == "crs"


@pytest.mark.parametrize(("epsg", "needle"), [(4326, "not projected"), (4490, "not projected"), (2227, "units"),
                                              (12345678, "not a known CRS")])
def test_storage_crs_must_be_projected_metres(epsg, needle):
    with pytest.raises(InvalidInput, match=needle):
        crs.require_storage_crs(epsg)


def test_extent_check_accepts_chaoyang_in_4548():
    crs.check_extent_fits(4548, (116.35, 39.81, 116.65, 40.11))


def test_extent_check_names_the_right_zone_for_zhengzhou():
    with pytest.raises(InvalidInput, match="EPSG:4547"):
        crs.check_extent_fits(4548, (113.65, 34.62, 113.85, 34.77))


def test_extent_check_rejects_far_from_central_meridian_with_utm():
    # UTM 50N covers 114–120°E; 119.9 is 2.9° from its CM 117°E.
    with pytest.raises(InvalidInput, match="central meridian"):
        crs.check_extent_fits(32650, (119.5, 30.0, 119.9, 30.2))


def test_to_storage_from_gcj02_moves_geometry_west_and_south():
    point = shapely.points([116.4432], [39.9215])
    as_wgs = crs.to_storage(point, crs.parse_crs("EPSG:4326"), 4548)[0]
    as_gcj = crs.to_storage(point, crs.parse_crs("gcj02"), 4548)[0]
    dx, dy = as_gcj.x - as_wgs.x, as_gcj.y - as_wgs.y
    assert -700 < dx < -400 and -300 < dy < -50
    assert math.isclose(shapely.distance(as_gcj, as_wgs), math.hypot(dx, dy))


def test_to_lonlat_round_trip_through_storage():
    point = shapely.points([113.75], [34.7])
    stored = crs.to_storage(point, crs.parse_crs("EPSG:4326"), 4547)
    back = crs.to_lonlat(stored, 4547)[0]
    assert metres([back.x], [back.y], [113.75], [34.7])[0] < 0.01


def test_to_storage_from_a_crs_with_several_datum_transformations():
    """MGI / Austria GK East (EPSG:31256) -> UTM 33N has more than one MGI->WGS84 operation, so PROJ picks one per
    coordinate and a pyproj Transformer has no single pipeline ('unavailable until proj_trans is called'): a road
    network of Vienna in it was a ProjError traceback (#19)."""
    stephansdom = shapely.points([16.3725], [48.2085])
    in_gk = crs.to_storage(stephansdom, crs.parse_crs("EPSG:4326"), 31256)
    stored = crs.to_storage(in_gk, crs.parse_crs("EPSG:31256"), 32633)
    back = crs.to_lonlat(stored, 32633)[0]
    assert metres([back.x], [back.y], [16.3725], [48.2085])[0] < 0.01
