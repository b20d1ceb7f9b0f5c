"""The standard classes of components (部件) and events (事件), loaded as data, keyed by scheme.

Class lists differ by city and standard edition (DOMAIN.md §3), so nothing here hard-codes a class: a scheme is
a pair of CSV files (``components.csv``, ``events.csv``) with the columns
``major_code,major_name,minor_code,minor_name,source``.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from citygrid.errors import InvalidInput

DEFAULT_SCHEME = "cjt214"
DEFAULT_SCHEME_TITLE = (
    "CJ/T 214-2007 / GB/T 30428.2-2013 component and event classes as implemented by deployed systems "
    "(reconstructed from public code and local documents, not from the standard's text)"
)
_CODE = re.compile(r"^[0-9]{4}$")
_MAJOR = re.compile(r"^[0-9]{2}$")
REQUIRED_COLUMNS = ("major_code", "major_name", "minor_code", "minor_name")


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
