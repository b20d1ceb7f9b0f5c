"""The bound on concurrent heavy requests: a slot per request, 503 with Retry-After over the bound."""

from __future__ import annotations

import pytest

from citygrid.errors import Overloaded
from citygrid.webmap.heavy import HeavyLimiter

from .conftest import assert_error, rollback_backend, signed_in, user_token


def test_a_limiter_gives_its_slots_and_refuses_beyond_them():
    limiter = HeavyLimiter(1, wait_s=0)
    with limiter.slot():
        with pytest.raises(Overloaded) as err, limiter.slot():
            pass
        assert err.value.retry_after_s > 0 and "at most 1 at once" in err.value.message
    with limiter.slot():  # released again
        pass
    with pytest.raises(Overloaded), HeavyLimiter(0, wait_s=0).slot():
        pass
    with pytest.raises(ValueError):
        HeavyLimiter(-1)


@pytest.fixture
def app_with(bj, beijing_db):
    """``app_with(**config)``: an app on the rolled-back test database with extra config."""
    from citygrid.app import create_app

    def make(**config):
        return create_app({"CITYGRID_BACKEND": rollback_backend(bj, beijing_db.database or ""), "TESTING": True,
                           **config})
    return make


@pytest.mark.parametrize("path", ["/api/v1/density.json?district=110105", "/api/v1/caseload?district=110105",
                                  "/api/v1/caseload?district=110105&format=csv"])
def test_over_the_bound_a_heavy_request_is_503_with_retry_after(app_with, bj, path):
    app = app_with(CITYGRID_HEAVY_REQUESTS=1, CITYGRID_HEAVY_WAIT_S=0)
    client = signed_in(app.test_client(), user_token(bj, "heavy-analyst", ["analyst"]))
    with app.extensions["citygrid_heavy"].slot():  # another request holds the only slot
        busy = client.get(path)
        assert client.get("/healthz").status_code == 200  # light requests are not bounded
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "2"
    assert busy.get_json()["error"] == "overloaded" and "heavy requests" in busy.get_json()["message"]
    assert client.get(path).status_code == 200  # the slot is free again


def test_imports_are_heavy_and_refused_callers_take_no_slot(app_with, bj):
    app = app_with(CITYGRID_HEAVY_REQUESTS=0)
    anonymous = app.test_client()
    assert_error(anonymous.get("/api/v1/density.json?district=110105"), 401, "unauthorized", reason="sign in")
    gis = signed_in(app.test_client(), user_token(bj, "heavy-gis", ["gis"]))
    upload = gis.post("/api/v1/imports", data={"district": "110105"}, content_type="multipart/form-data")
    assert_error(upload, 503, "overloaded", reason="heavy requests")
    assert_error(gis.get("/api/v1/imports/00000000-0000-0000-0000-000000000000/report.csv"), 503, "overloaded",
                 reason="heavy requests")
