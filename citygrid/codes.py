"""Code formats: the one table every check of a code uses (imports, intake, accounts, the HTTP parameters,
the OpenAPI document). Per code scheme: district, street, community, unit-grid, supervision-grid and team codes
and component ObjIDs; in every scheme alike: class codes, component class codes and Open311 service codes.

A deployment records its scheme once, at ``citygrid db init --code-scheme`` (``deployment.code_scheme``):

``cn-admin`` (the default)
    The Chinese administrative scheme (GB/T 2260 county codes, NBS urban–rural codes). District: 6 digits
    (``110105``). Street (街道/乡镇): 9 or 12 digits, community (社区/村): 12 digits, both starting with the
    district code; a community's street is its first 9 digits + ``000`` unless the file names it.
    Unit grid: 15 digits, district + street digits 7–9 + community digits 10–12 + a 3-digit serial
    (``110105001001042``; see ``citygrid.gridding.codes``).
``alnum``
    A city's own codes (outside China, where inventing 6- and 9-digit codes would be fake). District, street
    and community: 1 to 12 characters, upper-case letters A–Z, digits and hyphens inside (``NYCBK``,
    ``BK-01``). Streets and communities need not start with the district code; a community names its street
    (a ``parent_code`` column). Unit grid: district + ``U`` + a 6-digit serial numbered across the district
    (``NYCBKU000042``).

In both, a supervision grid is district + ``S`` + 4 digits (``110105S0017``, ``NYCBKS0017``), a
supervision team district + ``T`` + 2 to 4 digits (``110105T03``) and a component's ObjID district + class
4 digits + serial 6 digits (``1101050101000001``, ``NYCBK0101000001``; ``components_survey.ids``). The
fixed-length tails make every grid, team or ObjID name its district unambiguously (``district_of``). The
database's own checks accept what any scheme allows; this module holds each deployment to its own.

The same in every scheme (``COMMON``): a class code of a class scheme (1–16 letters, digits, ``_`` or ``-``;
the packaged scheme's are 4 digits), a component class code (4 digits: ObjIDs embed it), a scheme's own
Open311 service code (1–32 letters, digits, ``_ . -``) and the packaged scheme's (``E0102``, ``C0101``).
Where no deployment is at hand (a report's intake, the OpenAPI document) ``any_scheme(kind)`` accepts a code
of any scheme.

No database access here: the deployment's scheme is read by ``citygrid.spatial.db.deployment_code_scheme``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from citygrid.errors import InvalidInput
from citygrid.spatial import db

DEFAULT_SCHEME = "cn-admin"
KINDS = ("district", "street", "community", "unit_grid", "supervision_grid", "team", "obj_id")
COMMON_KINDS = ("class", "component_class", "service_code", "packaged_service_code")
_ALNUM = r"[0-9A-Z](?:[0-9A-Z-]{0,10}[0-9A-Z])?"
_ALNUM_MAX = 12
OBJ_ID_TAIL = "[0-9]{10}"  # after the district code: class 4 digits + serial 6 digits
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass(frozen=True)
class Format:
    """One kind of code (in one scheme, or in all): the pattern it must match in full, how a message
    describes it (``text``), its longest form and its name in a message (``label``).

    ``pattern`` has a ``district`` group for grid, team and ObjID codes (the district the code belongs to)."""

    pattern: re.Pattern[str]
    text: str
    max_length: int
    label: str = ""

    def matches(self, code: str) -> bool:
        return self.pattern.fullmatch(code) is not None

    def problem(self, code: object, scheme_name: str | None = None) -> str | None:
        """Why ``code`` does not match (None when it does), in words a user can act on; ``scheme_name``, when
        given, is named in the last resort message."""
        label = self.label
        if code is None or code == "":
            return f"a {label} is required ({self.text})"
        if not isinstance(code, str):
            return f"a {label} must be text ({self.text})"
        if self.matches(code):
            return None
        shown = show(code)
        if _CONTROL.search(code):
            return f"{label} {shown} contains control characters"
        if code != code.strip() or any(c.isspace() for c in code):
            return f"{label} {shown} contains white space"
        if len(code) > self.max_length:
            return f"{label} {shown} is {len(code)} characters long; at most {self.max_length} ({self.text})"
        if code != code.upper() and self.matches(code.upper()):
            return f"{label} {shown} must be upper case ({code.upper()})"
        return f"{label} {shown} must be {self.text}" + (f" (code scheme {scheme_name})" if scheme_name else "")


_LABELS = {"obj_id": "component ObjID", "service_code": "service code", "packaged_service_code": "service code",
           "component_class": "component class code"}


def _format(pattern: str, text: str, max_length: int, kind: str = "") -> Format:
    return Format(re.compile(pattern), text, max_length, _LABELS.get(kind, kind.replace("_", " ") + " code"))


def _grid_formats(district: str, district_len: int, unit: str, unit_text: str,
                  unit_tail: int, obj_id_text: str) -> dict[str, Format]:
    """The formats built on a district code: unit and supervision grid, team, ObjID."""
    return {
        "unit_grid": _format(rf"(?P<district>{district}){unit}", unit_text, district_len + unit_tail, "unit_grid"),
        "supervision_grid": _format(rf"(?P<district>{district})S[0-9]{{4}}",
                                    "the district code + S + 4 digits", district_len + 5, "supervision_grid"),
        "team": _format(rf"(?P<district>{district})T[0-9]{{2,4}}", "the district code + T + 2 to 4 digits",
                        district_len + 5, "team"),
        "obj_id": _format(rf"(?P<district>{district}){OBJ_ID_TAIL}", obj_id_text, district_len + 10, "obj_id"),
    }


# The same in every scheme (see the module docstring).
COMMON: dict[str, Format] = {
    "class": _format(r"[A-Za-z0-9][A-Za-z0-9_-]{0,15}",
                     "1–16 letters, digits, _ or -, starting with a letter or digit (e.g. 0102)", 16, "class"),
    "component_class": _format(r"[0-9]{4}", "4 digits, major + minor class (component ObjIDs embed it)", 4,
                               "component_class"),
    "service_code": _format(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}",
                            "1–32 letters, digits, _ . or -, starting with a letter or digit", 32, "service_code"),
    "packaged_service_code": _format(r"(?P<kind>[CE])(?P<class_code>[0-9]{4})",
                                     "E or C and a 4-digit class: E0102 (event) or C0101 (component)", 5,
                                     "packaged_service_code"),
}


@dataclass(frozen=True)
class CodeScheme:
    """The formats of one scheme (see the module docstring) and the checks built on them."""

    name: str
    title: str
    formats: dict[str, Format]
    areas_prefixed: bool
    """Street and community codes start with the district code (and a community's street is derived)."""
    example_district: str

    def matches(self, kind: str, code: str) -> bool:
        """Whether ``code`` is a well-formed code of ``kind`` in this scheme (nothing is looked up)."""
        return isinstance(code, str) and self.formats[kind].matches(code)

    def problem(self, kind: str, code: str | None) -> str | None:
        """Why ``code`` is not a ``kind`` code of this scheme (None when it is), in words a user can act on."""
        return self.formats[kind].problem(code, None if kind in COMMON else self.name)

    def check(self, kind: str, code: str | None, field: str | None = None) -> str:
        """Return ``code`` if well formed, else raise ``InvalidInput`` (``field``, default the kind)."""
        reason = self.problem(kind, code)
        if reason is not None:
            raise InvalidInput(reason, field=field or kind)
        assert code is not None
        return code

    def district_of(self, kind: str, code: str) -> str:
        """The district a (well-formed) unit-grid, supervision-grid, team or ObjID code belongs to."""
        match = self.formats[kind].pattern.fullmatch(code)
        if match is None or "district" not in match.groupdict():
            raise InvalidInput(self.problem(kind, code) or f"{code!r} names no district", field=kind)
        return match.group("district")

    def street_of(self, community_code: str) -> str | None:
        """The street a community belongs to by its code alone (cn-admin), or None (alnum: it must be given)."""
        return community_code[:9] + "000" if self.areas_prefixed else None

    @staticmethod
    def supervision_code(district: str, number: int) -> str:
        """The ``number``-th (1-based) supervision grid of ``district``: ``110105S0001``."""
        return f"{district}S{number:04d}"

    @staticmethod
    def team_code(district: str, number: int) -> str:
        """The ``number``-th (1-based) supervision team of ``district``: ``110105T01``."""
        return f"{district}T{number:02d}"


SCHEMES: dict[str, CodeScheme] = {
    "cn-admin": CodeScheme(
        name="cn-admin",
        title="Chinese administrative codes (6-digit districts, 9/12-digit streets and communities)",
        formats={
            "district": _format(r"[0-9]{6}", "6 digits, e.g. 110105", 6, "district"),
            "street": _format(r"[0-9]{9}(?:[0-9]{3})?", "9 or 12 digits starting with the district code", 12,
                              "street"),
            "community": _format(r"[0-9]{12}", "12 digits starting with the district code", 12, "community"),
            **_grid_formats("[0-9]{6}", 6, "[0-9]{9}", "15 digits", 9,
                            "16 digits (county 6 + class 4 + serial 6)"),
            **COMMON,
        },
        areas_prefixed=True,
        example_district="110105",
    ),
    "alnum": CodeScheme(
        name="alnum",
        title="a city's own codes: 1 to 12 upper-case letters, digits and inner hyphens",
        formats={
            kind: _format(_ALNUM, "1 to 12 upper-case letters A-Z, digits or inner hyphens, e.g. NYCBK",
                          _ALNUM_MAX, kind)
            for kind in ("district", "street", "community")
        } | _grid_formats(_ALNUM, _ALNUM_MAX, "U[0-9]{6}", "the district code + U + 6 digits", 7,
                          "the district code + class 4 digits + serial 6 digits") | COMMON,
        areas_prefixed=False,
        example_district="NYCBK",
    ),
}


def scheme(name: str | None) -> CodeScheme:
    """The scheme called ``name`` (None: the default); ``InvalidInput`` naming the known ones otherwise."""
    if name is None:
        return SCHEMES[DEFAULT_SCHEME]
    found = SCHEMES.get(name) if isinstance(name, str) else None
    if found is None:
        raise InvalidInput(f"unknown code scheme {show(str(name))}; use one of {', '.join(SCHEMES)}",
                           field="code_scheme")
    return found


# How a code of any scheme is described where the schemes' own texts would not read as one.
_ANY_SCHEME_TEXT = {
    "obj_id": "a 16-digit number in China (county 6 + class 4 + serial 6), elsewhere the district code + 10 digits",
    "unit_grid": "15 digits (cn-admin), or the district code + U + 6 digits (alnum)",
}


@functools.cache
def any_scheme(kind: str) -> Format:
    """The format of a ``kind`` code in any scheme (without named groups), for checks and documents that do
    not depend on the deployment: a report's intake, the OpenAPI document."""
    if kind in COMMON:
        return COMMON[kind]
    formats = [s.formats[kind] for s in SCHEMES.values()]
    patterns = list(dict.fromkeys(_unnamed(f.pattern.pattern) for f in formats))
    texts = list(dict.fromkeys(f.text for f in formats))
    if len(texts) > 1:
        texts = [f"{f.text} ({s.name})" for s, f in zip(SCHEMES.values(), formats, strict=True)]
    return Format(re.compile("|".join(f"(?:{p})" for p in patterns)), _ANY_SCHEME_TEXT.get(kind, " or ".join(texts)),
                  max(f.max_length for f in formats), formats[0].label)


def any_scheme_pattern(kind: str) -> str:
    """``any_scheme(kind)`` as an anchored regular expression in the dialect JSON Schema and OpenAPI write
    (ECMA 262: no Python named groups)."""
    return f"^(?:{_unnamed(any_scheme(kind).pattern.pattern)})$"


def _unnamed(pattern: str) -> str:
    """``pattern`` with its named groups made plain groups."""
    return re.sub(r"\(\?P<\w+>", "(", pattern)


def problem(kind: str, code: object) -> str | None:
    """Why ``code`` is not a ``kind`` code of any scheme (None when it is): see ``Format.problem``."""
    return any_scheme(kind).problem(code)


def check(kind: str, code: str | None, field: str | None = None) -> str:
    """``code`` if it is a ``kind`` code of any scheme, else ``InvalidInput`` (``field``, default the kind)."""
    reason = problem(kind, code)
    if reason is not None:
        raise InvalidInput(reason, field=field or kind)
    assert code is not None
    return code


def show(code: str, limit: int = 40) -> str:
    """``repr`` of a code for a message, cut at ``limit`` characters so a huge value cannot flood it."""
    return repr(code[:limit]) + ("…" if len(code) > limit else "")


def deployment_scheme(conn: Connection) -> CodeScheme:
    """The scheme the deployment recorded at ``db init`` (``deployment.code_scheme``)."""
    return scheme(db.deployment_code_scheme(conn))


def record_scheme(conn: Connection, name: str) -> CodeScheme:
    """Make ``name`` the deployment's scheme, in the caller's transaction.

    Allowed until the first district is imported; afterwards only the same scheme is accepted (the stored
    codes, and every grid code built from them, follow the old one): ``InvalidInput`` on field
    ``code_scheme`` otherwise.
    """
    wanted = scheme(name)
    current = deployment_scheme(conn)
    if wanted.name != current.name and db.set_deployment_code_scheme(conn, wanted.name):
        raise InvalidInput(f"this deployment already holds districts coded in the {current.name} scheme; "
                           f"its code scheme cannot become {wanted.name} (use another --database)",
                           field="code_scheme")
    return wanted
