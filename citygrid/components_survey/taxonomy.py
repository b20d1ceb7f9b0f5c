"""The standard classes of components (部件) and events (事件), loaded as data, keyed by scheme.

Class lists differ by city and standard edition (DOMAIN.md §3), so nothing here hard-codes a class. The packaged
scheme (``cjt214``) is a pair of CSV files (``components.csv``, ``events.csv``) with the columns
``major_code,major_name,minor_code,minor_name,source``. A city's own scheme (its 311 service list, in its
language) is one CSV or YAML file read by ``read_scheme_file`` (``citygrid taxonomy import``).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from citygrid import codes
from citygrid.errors import InvalidInput, RowProblem, problem
from citygrid.loaders import safeyaml
from citygrid.loaders.plaintext import control_character

DEFAULT_SCHEME = "cjt214"
DEFAULT_SCHEME_TITLE = (
    "CJ/T 214-2007 / GB/T 30428.2-2013 component and event classes as implemented by deployed systems "
    "(reconstructed from public code and local documents, not from the standard's text)"
)
_CODE = re.compile(codes.any_scheme_pattern("component_class"))
_MAJOR = re.compile(r"^[0-9]{2}$")
REQUIRED_COLUMNS = ("major_code", "major_name", "minor_code", "minor_name")

# A class code of any scheme, and a component class code and Open311 service code, as the one table of code
# formats has them (``citygrid.codes.COMMON``), anchored. Component classes keep 4 digits in every scheme: a
# component's ObjID embeds its class code (components_survey.ids).
CLASS_CODE = re.compile(codes.any_scheme_pattern("class"))
GROUP_CODE = re.compile(r"^[A-Za-z0-9_-]{0,16}$")
SERVICE_CODE = re.compile(codes.any_scheme_pattern("service_code"))
SCHEME_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
MAX_SCHEME_BYTES = 1024 * 1024
MAX_CLASSES = 2000
MAX_NAME = 100
MAX_TEXT = 1000
SCHEME_FIELDS = ("code", "name", "kind", "group", "group_code", "keywords", "description", "service_code",
                 "open311")
_TRUE, _FALSE = ("true", "yes", "1", "y"), ("false", "no", "0", "n", "")
# Fields that are codes: YAML would read an unquoted 0102 as the octal number 66, 311.10 as 311.1.
_CODE_FIELDS = ("code", "group_code", "service_code")
# Bidirectional overrides and isolates: a class name holding one shows as another text (Open311 is public).
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")


@dataclass(frozen=True)
class TaxonomyClass:
    """One minor class. ``code`` is the 4-digit major+minor code; ``verified`` when ≥ 2 sources list it."""

    kind: str
    code: str
    major_code: str
    major_name: str
    name: str
    sources: str
    verified: bool
    keywords: str = ""
    description: str = ""
    service_code: str | None = None
    open311: bool = True


def read_class_file(path: Path, kind: str) -> list[TaxonomyClass]:
    """Read one class CSV; raises ``InvalidInput`` with one detail per bad line."""
    problems: list[dict[str, object]] = []
    classes: list[TaxonomyClass] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise InvalidInput(f"{path.name}: missing columns {', '.join(missing)}", field="file")
        for line, row in enumerate(reader, start=2):
            code, major = row["minor_code"].strip(), row["major_code"].strip()
            if not _CODE.match(code) or not _MAJOR.match(major) or not code.startswith(major):
                problems.append({"line": line, "field": "minor_code", "reason": f"bad code {code!r} / {major!r}"})
                continue
            if code in seen:
                problems.append({"line": line, "field": "minor_code", "reason": f"duplicate code {code}"})
                continue
            seen.add(code)
            sources = (row.get("source") or "").strip()
            classes.append(TaxonomyClass(
                kind=kind, code=code, major_code=major, major_name=row["major_name"].strip(),
                name=row["minor_name"].strip(), sources=sources, verified=sources.count(" | ") >= 1,
            ))
    if problems:
        raise InvalidInput(f"{path.name}: {len(problems)} bad line(s)", details=problems)
    return classes


def read_scheme(directory: Path) -> list[TaxonomyClass]:
    """Read ``components.csv`` and ``events.csv`` of a scheme directory."""
    files = {"component": directory / "components.csv", "event": directory / "events.csv"}
    for path in files.values():
        if not path.exists():
            raise InvalidInput(f"taxonomy file missing: {path}", field="file")
    return [c for kind, path in files.items() for c in read_class_file(path, kind)]


def read_scheme_file(path: Path) -> list[TaxonomyClass]:
    """Read a city's own class scheme: a CSV (header row) or YAML file of classes.

    Fields per class (CSV columns or YAML keys; ``SCHEME_FIELDS``): ``code`` (``CLASS_CODE``; 4 digits for a
    component class), ``name`` (≤ 100 characters), ``kind`` (``event`` | ``component``), and optionally ``group``
    and ``group_code`` (the major class), ``keywords`` (words people use for it, ``;``-separated or a YAML
    list), ``description`` (≤ 1000 characters), ``service_code`` (its Open311 code, default the class code;
    unique in the scheme) and ``open311`` (false: not offered as an Open311 service). YAML is either a list
    of classes or ``{classes: [...]}``, read without aliases (``loaders.safeyaml``). At most 1 MiB and 2000
    classes; an unknown field, a duplicate code or service code and a control character are errors.

    Raises
    ------
    InvalidInput : one detail (line or item, field, reason) per problem; nothing is returned then.
    """
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".yaml", ".yml"):
        raise InvalidInput(f"{path.name}: a class scheme is a .csv or .yaml file", field="file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path.name}: {exc.strerror}", field="file") from None
    if len(raw) > MAX_SCHEME_BYTES:
        raise InvalidInput(f"{path.name} is larger than {MAX_SCHEME_BYTES // 1024} KiB", field="file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path.name} is not UTF-8 (byte {exc.start})", field="file") from None
    rows = _csv_rows(text, path.name) if suffix == ".csv" else _yaml_rows(text, path.name)
    if not rows:
        raise InvalidInput(f"{path.name} holds no classes", field="file")
    if len(rows) > MAX_CLASSES:
        raise InvalidInput(f"{path.name} holds {len(rows)} classes; at most {MAX_CLASSES}", field="file")
    return scheme_classes(rows, path.name)


def _csv_rows(text: str, name: str) -> list[tuple[str, dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = [c.strip() for c in reader.fieldnames or []]
    repeated = next((c for i, c in enumerate(columns) if c in columns[:i]), None)
    if repeated is not None:
        raise InvalidInput(f"{name}: column {repeated!r} appears twice", field="file")
    unknown = [c for c in columns if c not in SCHEME_FIELDS]
    if unknown:
        raise InvalidInput(f"{name}: unknown column {unknown[0]!r}; known: {', '.join(SCHEME_FIELDS)}", field="file")
    missing = [c for c in ("code", "name", "kind") if c not in columns]
    if missing:
        raise InvalidInput(f"{name}: missing column(s) {', '.join(missing)}", field="file")
    try:
        return [(f"line {line}", {k.strip(): v for k, v in row.items() if k is not None})
                for line, row in enumerate(reader, start=2)]
    except csv.Error as exc:
        raise InvalidInput(f"{name} is not a readable CSV: {exc}", field="file") from None


def _yaml_rows(text: str, name: str) -> list[tuple[str, dict[str, Any]]]:
    data = safeyaml.load(text, what=name, field="file")
    if isinstance(data, dict):
        extra = sorted(set(data) - {"classes"})
        if extra:
            raise InvalidInput(f"{name}: unknown key {extra[0]!r}; a scheme file holds 'classes'", field="file")
        data = data.get("classes")
    if not isinstance(data, list):
        raise InvalidInput(f"{name}: expected a list of classes (or 'classes:' holding one)", field="file")
    rows = []
    for i, item in enumerate(data, start=1):
        if not isinstance(item, dict):
            raise InvalidInput(f"{name}: class {i} is not a mapping of fields", field="file")
        unknown = sorted(str(k) for k in item if k not in SCHEME_FIELDS)
        if unknown:
            raise InvalidInput(f"{name}: class {i}: unknown key {unknown[0]!r}; known: {', '.join(SCHEME_FIELDS)}",
                               field="file")
        rows.append((f"class {i}", item))
    return rows


def _problem(where: str, field: str, reason: str) -> RowProblem:
    """A problem with one class of a scheme file: ``line`` its CSV line (None for a YAML class), ``where`` as
    the messages name it (``line 5``, ``class 3``)."""
    kind, _, number = where.partition(" ")
    return problem(field, reason, line=int(number) if kind == "line" else None, where=where)


def _text(row: dict[str, Any], key: str, where: str, problems: list[RowProblem], limit: int,
          single_line: bool = True) -> str:
    value = row.get(key)
    if isinstance(value, list) and key == "keywords":
        if not all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in value):
            problems.append(_problem(where, key, "keywords must be words"))
            return ""
        value = "; ".join(str(v).strip() for v in value)
    if value is None:
        return ""
    if key in _CODE_FIELDS and isinstance(value, int | float) and not isinstance(value, bool):
        problems.append(_problem(where, key, f"{value!r} is a number in YAML (0102 reads as 66): quote it"))
        return ""
    if not isinstance(value, str | int | float | dt.date) or isinstance(value, bool):
        problems.append(_problem(where, key, "must be text"))
        return ""
    value = str(value).strip()
    if (what := control_character(value, single_line=single_line)) is not None:
        problems.append(_problem(where, key, f"contains a control character ({what})"))
        return ""
    if (bidi := _BIDI.search(value)) is not None:
        problems.append(_problem(where, key, "contains a bidirectional control character "
                                 f"(U+{ord(bidi.group()):04X} at position {bidi.start()})"))
        return ""
    if len(value) > limit:
        problems.append(_problem(where, key, f"longer than {limit} characters"))
        return ""
    return value


def scheme_classes(rows: list[tuple[str, dict[str, Any]]], name: str) -> list[TaxonomyClass]:
    """Validate rows (where, fields) of a city scheme into classes; ``InvalidInput`` listing every problem."""
    problems: list[RowProblem] = []
    classes: list[TaxonomyClass] = []
    seen: set[tuple[str, str]] = set()
    services: set[str] = set()
    for where, row in rows:
        before = len(problems)
        item = _scheme_class(row, where, problems)
        if (item.kind, item.code) in seen:
            problems.append(_problem(where, "code", f"duplicate {item.kind} class {item.code}"))
        elif item.service_code in services:
            problems.append(_problem(where, "service_code", f"duplicate service code {item.service_code}; "
                                     "give each class its own service_code"))
        if len(problems) > before:
            continue
        seen.add((item.kind, item.code))
        services.add(item.service_code or "")
        classes.append(item)
    if problems:
        raise InvalidInput(f"{name}: {len(problems)} problem(s) in the class scheme", details=problems[:200])
    return classes


def _scheme_class(row: dict[str, Any], where: str, problems: list[RowProblem]) -> TaxonomyClass:
    """One row of a city scheme as a class, with a problem added for each field that is wrong (the class is
    then not to be used)."""
    code = _text(row, "code", where, problems, 16)
    kind = _text(row, "kind", where, problems, 20).lower()
    label = _text(row, "name", where, problems, MAX_NAME)
    group = _text(row, "group", where, problems, MAX_NAME)
    group_code = _text(row, "group_code", where, problems, 16)
    keywords = _text(row, "keywords", where, problems, MAX_TEXT)
    description = _text(row, "description", where, problems, MAX_TEXT, single_line=False)
    service = _text(row, "service_code", where, problems, 32) or code
    offered = _open311(row.get("open311", True), where, problems)
    _check_fields(kind, code, label, group_code, service, where, problems)
    return TaxonomyClass(kind=kind, code=code, major_code=group_code, major_name=group, name=label, sources="",
                         verified=False, keywords=keywords, description=description, service_code=service,
                         open311=offered)


def _open311(offered: Any, where: str, problems: list[RowProblem]) -> bool:
    """Whether the class is offered on Open311: true/false (or yes/no, 1/0, y/n; empty or missing: true)."""
    if isinstance(offered, str):
        if offered.strip().lower() not in _TRUE + _FALSE:
            problems.append(_problem(where, "open311", "must be true or false"))
        return offered.strip().lower() in _TRUE or offered.strip() == ""
    if offered is None:
        return True
    if not isinstance(offered, bool):
        problems.append(_problem(where, "open311", "must be true or false"))
    return bool(offered)


def _check_fields(kind: str, code: str, label: str, group_code: str, service: str, where: str,
                  problems: list[RowProblem]) -> None:
    """Problems with a class's kind, codes and name: kind event or component, a code of ``CLASS_CODE`` (4
    digits for a component: its ObjIDs embed it), a name, a group code and a service code of their formats."""
    if kind not in ("event", "component"):
        problems.append(_problem(where, "kind", f"must be event or component, not {kind!r}"))
    if not CLASS_CODE.match(code):
        problems.append(_problem(where, "code", f"bad code {code!r}: 1–16 letters, digits, _ or -, starting "
                                                "with a letter or digit"))
    elif kind == "component" and not _CODE.match(code):
        problems.append(_problem(where, "code", f"component class code {code!r} must be 4 digits (component "
                                                "ObjIDs embed it)"))
    if not label:
        problems.append(_problem(where, "name", "required"))
    if not GROUP_CODE.match(group_code):
        problems.append(_problem(where, "group_code", "up to 16 letters, digits, _ or -"))
    if service and not SERVICE_CODE.match(service):
        problems.append(_problem(where, "service_code",
                                 f"bad service code {service!r}: 1–32 letters, digits, _ . or -"))
