"""Code formats per code scheme: the one table every check of a district, street, community, unit-grid,
supervision-grid or team code uses (imports, accounts, the HTTP parameters, the OpenAPI document).

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

In both, a supervision grid is district + ``S`` + 4 digits (``110105S0017``, ``NYCBKS0017``) and a
supervision team district + ``T`` + 2 to 4 digits (``110105T03``). The fixed-length tails make every grid
or team code name its district unambiguously (``district_of``). The database's own checks accept what any
scheme allows; this module holds each deployment to its own.

No database access here: the deployment's scheme is read by ``citygrid.spatial.db.deployment_code_scheme``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from citygrid.errors import InvalidInput
from citygrid.spatial import db

DEFAULT_SCHEME = "cn-admin"
KINDS = ("district", "street", "community", "unit_grid", "supervision_grid", "team")
_ALNUM = r"[0-9A-Z](?:[0-9A-Z-]{0,10}[0-9A-Z])?"
_ALNUM_MAX = 12
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass(frozen=True)
class Format:
    """One kind of code in one scheme: the pattern it must match in full, and how a message describes it.

    ``pattern`` has a ``district`` group for grid and team codes (the district the code belongs to)."""

    pattern: re.Pattern[str]
    text: str
    max_length: int

    def matches(self, code: str) -> bool:
        return self.pattern.fullmatch(code) is not None


def _format(pattern: str, text: str, max_length: int) -> Format:
    return Format(re.compile(pattern), text, max_length)


def _grid_formats(district: str, district_len: int, unit: str, unit_text: str,
                  unit_tail: int) -> dict[str, Format]:
    return {
        "unit_grid": _format(rf"(?P<district>{district}){unit}", unit_text, district_len + unit_tail),
        "supervision_grid": _format(rf"(?P<district>{district})S[0-9]{{4}}",
                                    "the district code + S + 4 digits", district_len + 5),
        "team": _format(rf"(?P<district>{district})T[0-9]{{2,4}}", "the district code + T + 2 to 4 digits",
                        district_len + 5),
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
        fmt = self.formats[kind]
        label = kind.replace("_", " ")
        if code is None or code == "":
            return f"a {label} code is required ({fmt.text})"
        if not isinstance(code, str):
            return f"a {label} code must be text ({fmt.text})"
        if fmt.matches(code):
            return None
        shown = show(code)
        if _CONTROL.search(code):
            return f"{label} code {shown} contains control characters"
        if code != code.strip() or any(c.isspace() for c in code):
            return f"{label} code {shown} contains white space"
        if len(code) > fmt.max_length:
            return f"{label} code {shown} is {len(code)} characters long; at most {fmt.max_length} ({fmt.text})"
        if code != code.upper() and fmt.matches(code.upper()):
            return f"{label} code {shown} must be upper case ({code.upper()})"
        return f"{label} code {shown} must be {fmt.text} (code scheme {self.name})"

    def check(self, kind: str, code: str | None, field: str | None = None) -> str:
        """Return ``code`` if well formed, else raise ``InvalidInput`` (``field``, default the kind)."""
        reason = self.problem(kind, code)
        if reason is not None:
            raise InvalidInput(reason, field=field or kind)
        assert code is not None
        return code

    def district_of(self, kind: str, code: str) -> str:
        """The district a (well-formed) unit-grid, supervision-grid or team code belongs to."""
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
            "district": _format(r"[0-9]{6}", "6 digits, e.g. 110105", 6),
            "street": _format(r"[0-9]{9}(?:[0-9]{3})?", "9 or 12 digits starting with the district code", 12),
            "community": _format(r"[0-9]{12}", "12 digits starting with the district code", 12),
            **_grid_formats("[0-9]{6}", 6, "[0-9]{9}", "15 digits", 9),
        },
        areas_prefixed=True,
        example_district="110105",
    ),
    "alnum": CodeScheme(
        name="alnum",
        title="a city's own codes: 1 to 12 upper-case letters, digits and inner hyphens",
        formats={
            kind: _format(_ALNUM, "1 to 12 upper-case letters A-Z, digits or inner hyphens, e.g. NYCBK",
                          _ALNUM_MAX)
            for kind in ("district", "street", "community")
        } | _grid_formats(_ALNUM, _ALNUM_MAX, "U[0-9]{6}", "the district code + U + 6 digits", 7),
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


def any_scheme_pattern(kind: str) -> str:
    """A regular expression (anchored) matching a ``kind`` code of any scheme, for documents such as the
    OpenAPI description that do not depend on the deployment."""
    return "^(?:" + "|".join(s.formats[kind].pattern.pattern.replace("?P<district>", "")
                             for s in SCHEMES.values()) + ")$"


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
