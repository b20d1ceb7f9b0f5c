"""The collections the server offers to GIS tools (#25), as data: each ``Kind`` of collection with its fields,
its feature id, what ``datetime`` selects and who may read it. A collection is one kind in one district, named
``f"{kind}-{district}"`` (``unit-grids-110105``).

Every field has a ``short`` name of at most 10 ASCII characters, unique in its kind: the Shapefile (DBF) column
it is written as (the documented mapping of ``citygrid export … --format shp``). ``queryable`` fields are the
ones an ``/ogc`` items request (and an export) may filter on with an exact value.

Pure data; no database.

Examples
--------
>>> collection_id("unit-grids", "110105")
'unit-grids-110105'
>>> kind, district = parse_collection_id("supervision-grids-110105")
>>> kind.key, district
('supervision-grids', '110105')
>>> [f.short for f in KINDS["cases"].fields if len(f.short) > 10]
[]
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from citygrid.accounts.roles import ANY_ROLE, CASE_READERS
from citygrid.errors import NotFound
from citygrid.responsibility.ownership import ROLES as OWNER_ROLES

FIELD_TYPES = ("string", "integer", "number", "boolean", "date", "date-time")
TEMPORAL = ("version", "census", "reported")
# A district code as it may appear in a collection id (the code itself is checked against the database).
_DISTRICT = re.compile(r"^[0-9A-Za-z_]{1,32}$")


@dataclass(frozen=True)
class Field:
    """One property of a collection's features.

    ``name``: the property name in GeoJSON / OGC / GeoPackage / CSV; ``type``: one of ``FIELD_TYPES``;
    ``short``: the Shapefile (DBF) field name (<= 10 ASCII characters, unique in its kind); ``queryable``: may be
    filtered on (``FeatureQuery.filters``)."""

    name: str
    type: str
    title: str
    short: str
    queryable: bool = False


@dataclass(frozen=True)
class Kind:
    """One kind of collection; a collection is a kind in one district.

    ``geometry_type``: the OGC/GeoJSON geometry type of its features; ``id_field``: the field that is the feature
    id; ``temporal``: what ``datetime`` selects (``version``: the grid version in force then, ``census``: the
    components valid then, ``reported``: the cases reported in the interval, None: not temporal);
    ``versioned``: takes ``version=``; ``roles``: the account roles that may read it (admins always may)."""

    key: str
    title: str
    geometry_type: str
    fields: tuple[Field, ...]
    id_field: str
    temporal: str | None
    versioned: bool
    roles: tuple[str, ...]

    def field(self, name: str) -> Field | None:
        """The field called ``name``, or None."""
        return next((f for f in self.fields if f.name == name), None)

    @property
    def queryables(self) -> tuple[Field, ...]:
        """The fields that may be filtered on."""
        return tuple(f for f in self.fields if f.queryable)


_ROLE_SHORT = {"responsibility": "resp", "management": "mgmt", "enforcement": "enf", "supervision": "sup"}


def _owner_fields(when: str) -> tuple[Field, ...]:
    """The party code (queryable) and name owning a unit grid in each responsibility role at ``when``."""
    fields: list[Field] = []
    for role in OWNER_ROLES:
        short = _ROLE_SHORT[role]
        fields += [Field(f"owner_{role}", "string", f"{role} party code ({when})", f"own_{short}", True),
                   Field(f"owner_{role}_name", "string", f"{role} party name ({when})", f"own_{short}_n")]
    return tuple(fields)


_VERSION = Field("version", "integer", "grid version", "version")

UNIT_GRIDS = Kind(
    key="unit-grids", title="unit grids", geometry_type="Polygon", id_field="code", temporal="version",
    versioned=True, roles=ANY_ROLE,
    fields=(Field("code", "string", "unit grid code", "code", True),
            Field("street_code", "string", "street code", "street", True),
            Field("street_name", "string", "street name", "street_nm"),
            Field("community_code", "string", "community code", "community", True),
            Field("community_name", "string", "community name", "comm_nm"),
            Field("supervision_code", "string", "supervision grid code", "superv", True),
            Field("team_code", "string", "supervision team code", "team", True),
            Field("area_m2", "number", "area (m²)", "area_m2"),
            _VERSION,
            *_owner_fields("now, or at the end of datetime")))

SUPERVISION_GRIDS = Kind(
    key="supervision-grids", title="supervision grids", geometry_type="MultiPolygon", id_field="code",
    temporal="version", versioned=True, roles=ANY_ROLE,
    fields=(Field("code", "string", "supervision grid code", "code", True),
            Field("team_code", "string", "supervision team code", "team", True),
            Field("team_name", "string", "supervision team name", "team_nm"),
            Field("street_code", "string", "street code", "street", True),
            Field("workload", "number", "workload", "workload"),
            Field("supervisors_required", "integer", "supervisors required", "sup_req"),
            _VERSION))

TEAMS = Kind(
    key="teams", title="supervision teams (their grids dissolved)", geometry_type="MultiPolygon",
    id_field="code", temporal="version", versioned=True, roles=ANY_ROLE,
    fields=(Field("code", "string", "team code", "code", True),
            Field("name", "string", "team name", "name", True),
            Field("supervision_grids", "integer", "supervision grids", "sup_grids"),
            Field("workload", "number", "workload (sum of its grids')", "workload"),
            _VERSION))


def _area_kind(key: str, title: str) -> Kind:
    return Kind(key=key, title=title, geometry_type="MultiPolygon", id_field="code", temporal=None,
                versioned=False, roles=ANY_ROLE,
                fields=(Field("code", "string", "code", "code", True),
                        Field("name", "string", "name", "name", True),
                        Field("level", "string", "level", "level"),
                        Field("parent_code", "string", "parent area code", "parent", True),
                        Field("ur_code", "string", "urban-rural code", "ur_code")))


COMMUNITIES = _area_kind("communities", "communities")
STREETS = _area_kind("streets", "streets")

COMPONENTS = Kind(
    key="components", title="components (census)", geometry_type="Point", id_field="obj_id", temporal="census",
    versioned=False, roles=ANY_ROLE,
    fields=(Field("obj_id", "string", "component ObjID", "obj_id", True),
            Field("class_code", "string", "class code", "class", True),
            Field("class_name", "string", "class name", "class_nm"),
            Field("major_code", "string", "major class code", "major", True),
            Field("major_name", "string", "major class name", "major_nm"),
            Field("obj_name", "string", "name", "obj_name"),
            Field("dept_code1", "string", "owning department code", "dept1", True),
            Field("dept_name1", "string", "owning department", "dept_nm1"),
            Field("dept_code2", "string", "managing department code", "dept2", True),
            Field("dept_name2", "string", "managing department", "dept_nm2"),
            Field("dept_code3", "string", "maintaining department code", "dept3", True),
            Field("dept_name3", "string", "maintaining department", "dept_nm3"),
            Field("unit_grid_code", "string", "unit grid code", "unit_grid", True),
            Field("supervision_code", "string", "supervision grid code", "superv", True),
            Field("obj_state", "string", "state", "state", True),
            Field("or_date", "date", "survey date", "or_date"),
            Field("ch_date", "date", "change date", "ch_date"),
            Field("data_source", "string", "data source", "source", True),
            Field("valid_from", "date-time", "in the census from", "valid_from"),
            Field("valid_to", "date-time", "in the census until", "valid_to")))

CASES = Kind(
    key="cases", title="cases", geometry_type="Point", id_field="case_id", temporal="reported", versioned=False,
    roles=CASE_READERS,
    fields=(Field("case_id", "integer", "case number", "case_id", True),
            Field("status", "string", "status", "status", True),
            Field("kind", "string", "kind (event/component)", "kind", True),
            Field("class_code", "string", "class code", "class", True),
            Field("class_name", "string", "class name", "class_nm"),
            Field("source", "string", "source", "source", True),
            Field("reported_at", "date-time", "reported at", "reported"),
            Field("closed_at", "date-time", "closed at", "closed"),
            Field("deadline_at", "date-time", "deadline", "deadline"),
            Field("unit_grid_code", "string", "unit grid code (at report time)", "unit_grid", True),
            Field("grid_version", "integer", "grid version in force at report time", "grid_ver"),
            Field("supervision_code", "string", "supervision grid code (at report time)", "superv", True),
            Field("team_code", "string", "supervision team (at report time)", "team"),
            Field("community_code", "string", "community code", "community", True),
            Field("street_code", "string", "street code", "street", True),
            *_owner_fields("at report time"),
            Field("party_code", "string", "responsible party (dispatched to) code", "party", True),
            Field("party_name", "string", "responsible party (dispatched to)", "party_nm")))

FRONTAGE_UNITS = Kind(
    key="frontage-units", title="frontage units (门前三包)", geometry_type="MultiPolygon", id_field="unit_id",
    temporal=None, versioned=False, roles=ANY_ROLE,
    fields=(Field("unit_id", "integer", "frontage unit id", "unit_id", True),
            Field("name", "string", "name", "name", True),
            Field("kind", "string", "kind", "kind", True),
            Field("party_code", "string", "party code", "party", True),
            Field("party_name", "string", "party name", "party_nm"),
            Field("credit_code", "string", "unified social credit code", "credit", True),
            Field("address", "string", "address", "address"),
            Field("valid_from", "date", "valid from", "valid_from"),
            Field("valid_to", "date", "valid until", "valid_to")))

KINDS: dict[str, Kind] = {k.key: k for k in (UNIT_GRIDS, SUPERVISION_GRIDS, TEAMS, COMMUNITIES, STREETS,
                                             COMPONENTS, CASES, FRONTAGE_UNITS)}


def collection_id(kind_key: str, district: str) -> str:
    """The id of the collection of kind ``kind_key`` in ``district``: ``f"{kind_key}-{district}"``."""
    return f"{kind_key}-{district}"


def parse_collection_id(cid: str) -> tuple[Kind, str]:
    """The kind and district code a collection id names (the district is not looked up here).

    Raises
    ------
    NotFound : not ``<kind>-<district>`` with a known kind and a well-formed district code.
    """
    if isinstance(cid, str) and len(cid) <= 64:
        for key in sorted(KINDS, key=len, reverse=True):
            district = cid[len(key) + 1:]
            if cid.startswith(f"{key}-") and _DISTRICT.match(district):
                return KINDS[key], district
    shown = cid[:64] if isinstance(cid, str) else type(cid).__name__
    raise NotFound(f"no collection {shown!r}: collection ids are <kind>-<district>, kinds: {', '.join(KINDS)}")
