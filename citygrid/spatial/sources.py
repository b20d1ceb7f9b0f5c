"""Where a deployment's data came from: the texts an import records (source, licence) and the attributions
the pages show, built from the ``data_sources`` rows (``store.data_sources``), never from a fixed text.

No database and no Flask here: checks and wording only.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from typing import Any

from citygrid.errors import InvalidInput

MAX_TEXT = 300
KINDS = ("district", "street", "community", "road", "water", "rail", "census", "cases", "frontage", "ownership")
KIND_LABELS = {
    "district": "district boundary", "street": "streets", "community": "communities", "road": "roads",
    "water": "water lines", "rail": "railways", "census": "component census", "cases": "case history",
    "frontage": "frontage units (门前三包)", "ownership": "grid ownership lists",
}
# The source of a seeded census or case history (the demo's, ``cases synthesize``), recorded with
# synthetic = true; migration 0012 back-fills the same text.
SYNTHETIC_SOURCE = "seeded by citygrid, not real data"
# Characters that would let a source text rewrite what is shown around it: bidirectional overrides/isolates.
_BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}


def source_text(value: str | None, field: str = "source", *, required: bool = True) -> str:
    """``value`` stripped, as a data source's name or licence may hold it; ``InvalidInput`` naming ``field``
    otherwise: empty (when ``required``), longer than ``MAX_TEXT`` characters, or holding a control character
    (line breaks included), a lone surrogate or a bidirectional override.

    Examples
    --------
    >>> source_text("  NYC Open Data, DSNY litter baskets ")
    'NYC Open Data, DSNY litter baskets'
    """
    text = (value or "").strip()
    if not text:
        if required:
            raise InvalidInput(f"{field} is empty: name where the data comes from", field=field)
        return ""
    if len(text) > MAX_TEXT:
        raise InvalidInput(f"{field} is {len(text):,} characters long; at most {MAX_TEXT} (a name and, if any, "
                           "a link; put longer notes elsewhere)", field=field)
    for position, char in enumerate(text):
        if unicodedata.category(char) in ("Cc", "Cs") or char in _BIDI:
            raise InvalidInput(f"{field} holds U+{ord(char):04X} at position {position}: a source and a "
                               "licence are one line of plain text", field=field)
    return text


def attributions(rows: Iterable[dict[str, Any]], *, n_districts: int) -> list[dict[str, Any]]:
    """The attribution lines of the recorded sources: one per (source, licence, synthetic), naming what came
    from it (``what``, e.g. "district boundary, streets, communities") and, when the deployment has more than
    one district, where (``districts``).

    Parameters
    ----------
    rows : ``store.data_sources`` rows (district_code, kind, source, licence, synthetic).
    n_districts : how many districts the deployment has.

    Returns
    -------
    list of ``{what, source, licence, synthetic, districts}``, synthetic sources last.
    """
    grouped: dict[tuple[str, str, bool], dict[str, Any]] = {}
    for row in rows:
        key = (row["source"], row["licence"] or "", bool(row["synthetic"]))
        item = grouped.setdefault(key, {"kinds": set(), "districts": set()})
        item["kinds"].add(row["kind"])
        item["districts"].add(row["district_code"])
    out = []
    for (source, licence, synthetic), item in grouped.items():
        kinds = [k for k in KINDS if k in item["kinds"]]
        out.append({"what": ", ".join(KIND_LABELS[k] for k in kinds), "source": source, "licence": licence,
                    "synthetic": synthetic, "districts": sorted(item["districts"]) if n_districts > 1 else [],
                    "_order": (synthetic, KINDS.index(kinds[0]), source)})
    out.sort(key=lambda a: a["_order"])
    for item in out:
        del item["_order"]
    return out
