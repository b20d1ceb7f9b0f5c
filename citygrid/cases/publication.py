"""What the city publishes of its cases through Open311 GET: a rule as data (``data/open311.yaml``).

Open311 GET is anonymous, so it serves only what the city chooses to make public. By default that is the
requests that came in through Open311 itself; a city may add other sources or classes. Published requests
carry the GeoReport v2 fields only (no grid codes, owners, actors, attributes or contacts), positions
optionally rounded to a grid of ``round_m`` metres, and the description only when ``description`` is true.

No database, no Flask here: the rule is loaded once per app from the deployment's data directory and
passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from citygrid import codes
from citygrid.cases.workflow import CLOSED_STATES
from citygrid.errors import InvalidInput
from citygrid.loaders import safeyaml

KNOWN_KEYS = ("sources", "classes", "round_m", "description")
METRES_PER_DEGREE = 111_320.0


@dataclass(frozen=True)
class Publication:
    """The publication rule.

    Attributes
    ----------
    sources : case sources whose requests are published (default: ``open311`` only).
    classes : ``kind/code`` pairs (``event/0102``) published whatever their source.
    round_m : positions are snapped to a grid of this many metres (0: exact).
    description : whether the report's text is published.
    """

    sources: tuple[str, ...] = ("open311",)
    classes: tuple[str, ...] = ()
    round_m: float = 0.0
    description: bool = True

    @classmethod
    def from_data_dir(cls, data_dir: Path) -> Publication:
        """``<data_dir>/open311.yaml`` (``publish:`` section), or the default when there is none."""
        path = data_dir / "open311.yaml"
        if not path.exists():
            return cls()
        data = safeyaml.load(path.read_text(encoding="utf-8"), what=str(path), field="open311.yaml")
        return cls.from_mapping((data or {}).get("publish") or {} if isinstance(data, dict) else {})

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> Publication:
        """Validate a ``publish:`` mapping; ``InvalidInput`` naming an unknown key or a bad value."""
        unknown = sorted(set(data) - set(KNOWN_KEYS))
        if unknown:
            raise InvalidInput(f"open311.yaml: unknown key {unknown[0]!r}; known: {', '.join(KNOWN_KEYS)}",
                               field="open311.yaml")
        sources = tuple(str(s) for s in data.get("sources", cls.sources))
        classes = tuple(str(c) for c in data.get("classes", ()))
        bad = [c for c in classes if c.partition("/")[0] not in ("event", "component")
               or not codes.COMMON["class"].matches(c.partition("/")[2])]
        if bad:
            raise InvalidInput(f"open311.yaml: class {bad[0]!r} must look like event/0102 (kind/class code of the "
                               "deployment's scheme)", field="open311.yaml")
        round_m = float(data.get("round_m", 0.0))
        if not 0 <= round_m <= 10_000:
            raise InvalidInput("open311.yaml: round_m must be between 0 and 10000", field="open311.yaml")
        return cls(sources=sources, classes=classes, round_m=round_m,
                   description=bool(data.get("description", True)))

    def publishes(self, case: dict[str, Any]) -> bool:
        """Whether ``case`` is published."""
        return case["source"] in self.sources or f"{case['kind']}/{case['class_code']}" in self.classes

    def position(self, lon: float | None, lat: float | None) -> tuple[float | None, float | None]:
        """EPSG:4326 lon/lat snapped to the centre of a ``round_m`` grid cell (unchanged when 0)."""
        if lon is None or lat is None or not self.round_m:
            return lon, lat
        step_lat = self.round_m / METRES_PER_DEGREE
        snapped_lat = (math.floor(lat / step_lat) + 0.5) * step_lat
        # The cell's own latitude sets its width, so every point of a cell snaps to the same centre.
        step_lon = self.round_m / (METRES_PER_DEGREE * max(math.cos(math.radians(snapped_lat)), 0.01))
        return (math.floor(lon / step_lon) + 0.5) * step_lon, snapped_lat


def service_code(kind: str, code: str | None, own: str | None = None) -> str | None:
    """Open311's service code of a class: its scheme's own (``own``, an imported scheme's ``service_code``),
    else ``E0102`` for event 0102, ``C0101`` for component 0101; None for a case without a class."""
    if own:
        return own
    if not code:
        return None
    return ("C" if kind == "component" else "E") + code


def request_view(case: dict[str, Any], rule: Publication) -> dict[str, Any]:
    """A published case as a GeoReport v2 service request (coordinates EPSG:4326, rounded by ``rule``)."""
    lon, lat = rule.position(case.get("lon"), case.get("lat"))
    published_address = case["source"] == "open311"  # what the requester typed; internal sources keep theirs
    return {
        "service_request_id": str(case["case_id"]),
        "status": "closed" if case["status"] in CLOSED_STATES else "open",
        "status_notes": None,
        "service_name": case.get("class_name"),
        "service_code": service_code(case["kind"], case["class_code"], case.get("service_code")),
        "description": case["description"] if rule.description else None,
        "agency_responsible": None,
        "service_notice": None,
        "requested_datetime": case["reported_at"].isoformat(),
        "updated_datetime": (case.get("updated_at") or case["reported_at"]).isoformat(),
        "expected_datetime": case["deadline_at"].isoformat() if case.get("deadline_at") else None,
        "address": ((case.get("attrs") or {}).get("address") if published_address else None),
        "address_id": None,
        "zipcode": None,
        "lat": lat,
        "long": lon,
        "media_url": None,
    }
