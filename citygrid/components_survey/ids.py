"""Component IDs (ObjID): 6-digit county code + 2-digit major class + 2-digit minor class + 6-digit serial.

The rule comes from real ObjIDs (data/taxonomy/README.md, source F): 3205080101000001 is a 上水井盖 (0101)
in county 320508. A district with a code of another scheme (``codes``: ``NYC-BK``) prefixes its own code
the same way: ``NYC-BK0113000001``. Vectorised over a census (pandas string columns, Arrow-backed or not).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from citygrid import codes

# The format of an ObjID comes from the one table of code formats: 16 digits in a 6-digit (county) district,
# else the district code + ``codes.OBJ_ID_TAIL`` (class 4 digits + serial 6 digits).
_COUNTY_OBJ_ID = codes.SCHEMES["cn-admin"].formats["obj_id"]


def as_mask(values: pd.Series) -> np.ndarray:
    """A boolean Series (Arrow-backed or not, missing = False) as a numpy mask."""
    return np.asarray(values.fillna(False).to_numpy(dtype=bool))


def check_obj_ids(ids: pd.Series, classes: pd.Series, district: str) -> np.ndarray:
    """A reason per row ('' when the ID is fine, or missing: missing IDs are generated later)."""
    ids = ids.fillna("")
    reasons = np.full(len(ids), "", dtype=object)
    present = as_mask(ids != "")
    n = len(district)
    if district.isdigit() and n == 6:
        bad_format = present & ~as_mask(ids.str.fullmatch(_COUNTY_OBJ_ID.pattern.pattern))
        reasons[bad_format] = f"ObjID must be {_COUNTY_OBJ_ID.text}"
    else:
        tail = as_mask(ids.str.slice(n).str.fullmatch(codes.OBJ_ID_TAIL))
        bad_format = present & ~(as_mask(ids.str.len() == n + 10) & tail)
        reasons[bad_format] = f"ObjID must be the district code {district} + class 4 digits + serial 6 digits"
    ok = present & ~bad_format
    wrong_county = ok & as_mask(ids.str.slice(0, n) != district)
    reasons[wrong_county] = f"ObjID does not start with the district code {district}"
    classes = classes.fillna("")
    wrong_class = ok & ~wrong_county & as_mask(classes != "") & as_mask(ids.str.slice(n, n + 4) != classes)
    reasons[wrong_class] = f"ObjID {'digits 7–10' if n == 6 else 'class digits'} do not match the class code"
    zero = ok & ~wrong_county & ~wrong_class & as_mask(ids.str.slice(n + 4, n + 10) == "000000")
    reasons[zero] = "ObjID serial 000000 is not allowed"
    return reasons


def serial_keys(ids: pd.Series, district: str) -> np.ndarray:
    """Checked ObjIDs of ``district`` (``check_obj_ids``) as int64 keys for ``SeenIds``: the whole ID where it is
    16 digits (one cast in C), else the 10 digits after the district code (the code is the same in all; cutting
    it off first costs more than the cast, so only other code schemes pay for it)."""
    values = pa.array(ids)
    if not (district.isdigit() and len(district) == 6):
        values = pc.utf8_slice_codeunits(values, len(district))
    return pc.cast(values, pa.int64()).to_numpy()


class SeenIds:
    """The well-formed ObjIDs met so far in a file and the line of each, to refuse later duplicates.

    A 16-digit ObjID fits an int64, so membership is a sorted-array search rather than a Python set: a
    million IDs cost a few sorts instead of a million dictionary operations.
    """

    def __init__(self) -> None:
        self._keys = np.empty(0, dtype=np.int64)
        self._lines = np.empty(0, dtype=np.int64)

    def add(self, ids: np.ndarray, lines: np.ndarray) -> np.ndarray:
        """Line of the first occurrence for each ID already seen (in an earlier call or earlier in this one),
        0 for IDs seen here first; ``ids`` are 16-digit strings, ``lines`` their file lines, in file order."""
        keys = np.asarray(ids, dtype=np.int64)
        lines = np.asarray(lines, dtype=np.int64)
        first = np.zeros(len(keys), dtype=np.int64)
        if len(keys) == 0:
            return first
        if len(self._keys):
            at = np.minimum(np.searchsorted(self._keys, keys), len(self._keys) - 1)
            earlier = self._keys[at] == keys
            first[earlier] = self._lines[at[earlier]]
        # Within this call: np.unique gives each ID's first position; later positions repeat it.
        _, first_index, inverse = np.unique(keys, return_index=True, return_inverse=True)
        first_here = first_index[inverse]
        repeated = (np.arange(len(keys)) != first_here) & (first == 0)
        first[repeated] = lines[first_here[repeated]]
        new = first_index[first[first_index] == 0]
        self._keys = np.concatenate([self._keys, keys[new]])
        self._lines = np.concatenate([self._lines, lines[new]])
        order = np.argsort(self._keys, kind="stable")
        self._keys, self._lines = self._keys[order], self._lines[order]
        return first
