"""The hot-spot page of #24 in headless Chromium: Gi* classes over the unit grids with a legend in plain words,
the month slider, emerging categories with the slider stepping through the bins, the SYNTHETIC label, a street
view on a 390 px phone; no console errors, no request leaving localhost. Fails (never skips) without
Chromium."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.test_browser import ARTIFACTS, browser, open_page, server, tile_features  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow
DESKTOP = {"viewport": {"width": 1280, "height": 900}}
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}


@pytest.fixture(scope="module")
def history(beijing_engine):
    """A small seeded SYNTHETIC history in the test district (removed after)."""
    from citygrid.cases import synthetic

    with beijing_engine.begin() as conn:
        synthetic.generate(conn, "110105", 600, seed=24)
    yield
    with beijing_engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM cases WHERE district_code = '110105' AND synthetic"))


def _slide(page, value: int) -> None:
    page.evaluate("""(v) => { const s = document.getElementById('slider'); s.value = v;
        s.dispatchEvent(new Event('input')); s.dispatchEvent(new Event('change')); }""", value)
    page.wait_for_function("() => window.citygrid.ready")


def test_hotspot_page_gi_star_and_emerging_on_a_desktop(browser, server, history):  # noqa: F811
    with open_page(browser, server + "/hotspots", **DESKTOP) as (page, errors, outside):
        assert "SYNTHETIC" in page.inner_text("#summary") and "hot spots" in page.inner_text("#summary")
        assert tile_features(page, "hotspots") > 1000
        legend = page.inner_text(".cg-legend")
        assert "Gi*" in legend and "no clear difference from its surroundings" in legend
        assert "more cases than its surroundings" in legend or "fewer cases than its surroundings" in legend
        page.screenshot(path=str(ARTIFACTS / "hotspots-gi.png"))
        _slide(page, 2)
        label = page.inner_text("#slider-label")
        assert len(label) == 7 and label in page.inner_text(".cg-legend")  # the month, YYYY-MM
        page.select_option("#mode", "emerging")
        page.wait_for_function("() => window.citygrid.ready && !document.getElementById('summary')"
                               ".textContent.startsWith('computing')")
        assert "SYNTHETIC" in page.inner_text("#summary")
        assert "trend over" in page.inner_text(".cg-legend") and "no pattern over time" in page.inner_text(".cg-legend")
        assert int(page.get_attribute("#slider", "max")) >= 12
        _slide(page, 3)
        assert page.inner_text("#slider-label").endswith("-01")  # the bin's first day
        assert "in the month from" in page.inner_text(".cg-legend")
        page.screenshot(path=str(ARTIFACTS / "hotspots-emerging.png"))
        assert errors == [] and outside == []


def test_hotspot_page_on_a_phone(browser, server, history):  # noqa: F811
    with open_page(browser, server + "/hotspots", **PHONE) as (page, errors, outside):
        page.select_option("#level", "street")
        page.wait_for_function("() => window.citygrid.ready && window.citygrid.layers.hotspots.getLayers "
                               "&& window.citygrid.layers.hotspots.getLayers().length > 40")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        assert page.locator(".folium-map").bounding_box()["height"] > 844 / 2
        page.screenshot(path=str(ARTIFACTS / "phone-hotspots.png"))
        assert errors == [] and outside == []
