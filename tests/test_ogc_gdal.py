"""OGC API – Features at ``/ogc`` read by GDAL as a real client (``ogrinfo``, ``ogr2ogr`` from gdal-bin, run
in a subprocess against a real HTTP server): fails, never skips, without them."""

from __future__ import annotations

import json
import urllib.request


def test_the_live_server_answers_the_ogc_token(live_server, ogc_token):
    request = urllib.request.Request(f"{live_server}/api/v1/me", headers={"Authorization": f"Bearer {ogc_token}"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert json.load(answer)["user"]["username"] == "ogc-reader"
