"""Address -> location through the district's own gazetteer: street and community names (their points) and
road names (a point on the road), matched fuzzily with rapidfuzz. Points in the deployment CRS.

Only places that have a location can answer; a match gives the place's point, which is as precise as the
place (a community's registered centre, a point on a named road), and a confidence in 0–1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import shapely
from rapidfuzz import fuzz, process
from sqlalchemy.engine import Connection

from citygrid.spatial import store

MIN_SCORE = 90.0
_SUFFIXES = re.compile(r"(街道办事处|地区办事处|办事处|社区居委会|居委会|村委会|委员会)$")
SPECIFICITY = {"community": 3, "road": 2, "street": 1}


@dataclass(frozen=True)
class Place:
    name: str
    kind: str  # community | road | street
    code: str
    x: float | None  # None: a known place without a location
    y: float | None


@dataclass(frozen=True)
class Match:
    place: Place
    score: float
    confidence: float
    ambiguous: bool = False  # another place of the same name and score exists elsewhere


def short_name(name: str) -> str:
    """建外街道办事处 -> 建外街道, 南郎家园社区居委会 -> 南郎家园社区, 楼梓庄村委会 -> 楼梓庄村."""
    stripped = _SUFFIXES.sub("", name)
    if name.endswith("村委会"):
        return stripped + "村"
    if name.endswith(("社区居委会", "居委会")) and not stripped.endswith("社区"):
        return stripped + "社区"
    if name.endswith(("街道办事处",)):
        return stripped + "街道"
    if name.endswith("地区办事处"):
        return stripped + "地区"
    return stripped


class Gazetteer:
    """Named places of one district."""

    def __init__(self, district: str, places: list[Place]) -> None:
        self.district = district
        self.places = places
        self._names = [p.name for p in places]
        # Cores without 社区/村/街道/地区: people write 南郎家园小区 for 南郎家园社区 (used when 3+ characters remain).
        self._cores = [re.sub(r"(社区|村|街道|地区)$", "", n) for n in self._names]

    @classmethod
    def for_district(cls, conn: Connection, district: str) -> Gazetteer:
        """The streets, communities and named roads of ``district`` (``store.gazetteer_places``), points in
        the deployment CRS."""
        places = [Place(short_name(r["name"]), r["kind"], r["code"], r["x"], r["y"])
                  for r in store.gazetteer_places(conn, district)]
        return cls(district, places)

    def locate(self, address: str) -> Match | None:
        """The most specific place named in ``address``: a name written out in full scores 100; otherwise
        a fuzzy match must reach ``MIN_SCORE`` and the name be at least 5 characters (short Chinese names
        differ by one character: 建外街道 is not 朝外街道). None when nothing matches. A matched place without
        a location is returned with ``x`` None so the caller can say so."""
        address = (address or "").strip()
        if not address or not self.places:
            return None
        hits = [(name, 100.0, i) for i, name in enumerate(self._names) if len(name) >= 2 and name in address]
        hits += [(core, 95.0, i) for i, core in enumerate(self._cores)
                 if len(core) >= 3 and core != self._names[i] and core in address]
        if not hits:
            fuzzy = process.extract(address, self._names, scorer=fuzz.partial_ratio, limit=20,
                                    score_cutoff=MIN_SCORE)
            hits = [h for h in fuzzy if len(h[0]) >= 5]
        if not hits:
            return None
        def rank(h):
            return h[1], self.places[h[2]].x is not None, SPECIFICITY.get(self.places[h[2]].kind, 0), len(h[0])

        best_name, best_score, best_index = max(hits, key=rank)
        place = self.places[best_index]
        ambiguous = any(rank(h) == rank((best_name, best_score, best_index)) and h[0] == best_name
                        and self.places[h[2]].code != place.code for h in hits)
        confidence = round(best_score / 100 * (0.6 + 0.1 * SPECIFICITY.get(place.kind, 0)), 3)
        return Match(place=place, score=float(best_score), confidence=confidence, ambiguous=ambiguous)

    def point(self, match: Match) -> shapely.Point:
        return shapely.Point(match.place.x, match.place.y)
