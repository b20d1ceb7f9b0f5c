"""The demo districts shipped in ``data/demo/`` (real public data; see data/README.md for provenance).

This module only describes and reads the files; ``citygrid.deploy.load_demo`` stores them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from citygrid.errors import InvalidInput

VONNG = "Vonng/adcode @ b755d6e (Amap fences, NBS 2016 codes)"
VONNG_LICENCE = "CC BY 4.0 — Vonng/adcode"
OSM = "OpenStreetMap via overpass-turbo, 120171326lxt-lgtm/ev-theft-dashboard data/roads.geojson @ 9353648"
OSM_LICENCE = "ODbL 1.0 — © OpenStreetMap contributors"


@dataclass(frozen=True)
class DemoDistrict:
    """A demo district: files relative to ``data/demo`` and the database/CRS it is served from.

    ``boundary_crs`` and ``areas_crs`` are GCJ-02 (Amap-derived); ``roads_crs`` is WGS84 (OSM).
    """

    key: str
    code: str
    name: str
    database: str
    srid: int
    deployment_name: str
    boundary: str
    admin_codes: str
    roads: str | None = None
    boundary_crs: str = "gcj02"
    areas_crs: str = "gcj02"
    roads_crs: str = "EPSG:4326"
    # Grouping of the demo grids: Chaoyang uses the seeds' 237 supervision grids in 35 teams; None means
    # "in Chaoyang's proportions" (citygrid.gridding.service.default_group_counts).
    supervision_grids: int | None = None
    teams: int | None = None
    # Synthetic case history generated for the demo (citygrid.cases.synthetic), cases per year.
    history_cases: int = 0

    def path(self, demo_dir: Path, relative: str) -> Path:
        path = demo_dir / relative
        if not path.exists():
            raise InvalidInput(f"demo file missing: {path} (is the checkout complete?)", field="file")
        return path


DEMOS: dict[str, DemoDistrict] = {
    "chaoyang": DemoDistrict(
        key="chaoyang", code="110105", name="朝阳区", database="citygrid", srid=4548,
        deployment_name="北京市 Beijing",
        boundary="chaoyang/chaoyang_110105.geojson",
        admin_codes="chaoyang/chaoyang_110105_admin_codes.csv",
        supervision_grids=237, teams=35, history_cases=20_000,
    ),
    "guancheng": DemoDistrict(
        key="guancheng", code="410104", name="管城回族区", database="citygrid_zhengzhou", srid=4547,
        deployment_name="郑州市 Zhengzhou",
        boundary="guancheng/guancheng_410104.geojson",
        admin_codes="guancheng/guancheng_410104_admin_codes.csv",
        roads="zhengzhou_osm_roads/zhengzhou_jingkai_roads_osm.geojson", history_cases=8_000,
    ),
}
DEMO_ALIASES = {"zhengzhou": "guancheng", "beijing": "chaoyang", "110105": "chaoyang", "410104": "guancheng"}


def demo_district(key: str) -> DemoDistrict:
    """Look up a demo by key (``chaoyang``, ``guancheng``) or alias (``zhengzhou``, a district code)."""
    key = DEMO_ALIASES.get(key.lower(), key.lower())
    if key not in DEMOS:
        raise InvalidInput(f"unknown demo {key!r}; choose one of {', '.join(DEMOS)}", field="demo")
    return DEMOS[key]
