"""Component IDs (ObjID): 6-digit county code + 2-digit major class + 2-digit minor class + 6-digit serial.

The rule comes from real ObjIDs (data/taxonomy/README.md, source F): 3205080101000001 is a 上水井盖 (0101)
in county 320508. Vectorised over a census.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

OBJID_PATTERN = r"^[0-9]{16}$"


def check_obj_ids(ids: pd.Series, classes: pd.Series, district: str) -> pd.Series:
    """A reason per row ('' when the ID is fine) for IDs that are present."""
    ids = ids.fillna("").astype(str)
    reasons = pd.Series("", index=ids.index, dtype=object)
    present = ids != ""
    bad_format = present & ~ids.str.match(OBJID_PATTERN)
    reasons[bad_format] = "ObjID must be 16 digits (county 6 + class 4 + serial 6)"
    ok = present & ~bad_format
    wrong_county = ok & (ids.str[:6] != district)
    reasons[wrong_county] = f"ObjID does not start with the district code {district}"
    classes = classes.fillna("").astype(str)
    wrong_class = ok & ~wrong_county & (classes != "") & (ids.str[6:10] != classes)
    reasons[wrong_class] = "ObjID digits 7–10 do not match the class code"
    zero = ok & ~wrong_county & ~wrong_class & (ids.str[10:] == "000000")
    reasons[zero] = "ObjID serial 000000 is not allowed"
    return reasons


def generate_ids(classes: pd.Series, district: str, issued: dict[str, int]) -> tuple[pd.Series, dict[str, int]]:
    """New ObjIDs for rows of the given classes, continuing after the highest serial issued per class."""
    issued = dict(issued)
    out = pd.Series("", index=classes.index, dtype=object)
    for cls, idx in classes.groupby(classes).groups.items():
        start = issued.get(cls, 0)
        serials = np.arange(start + 1, start + 1 + len(idx))
        out[idx] = [f"{district}{cls}{s:06d}" for s in serials]
        issued[cls] = int(serials[-1])
    return out, issued


def serials_by_class(ids: pd.Series) -> dict[str, int]:
    """Highest serial per class among well-formed IDs."""
    ids = ids[ids.fillna("").astype(str).str.match(OBJID_PATTERN)]
    if ids.empty:
        return {}
    frame = pd.DataFrame({"cls": ids.str[6:10], "serial": ids.str[10:].astype(int)})
    return frame.groupby("cls")["serial"].max().astype(int).to_dict()
