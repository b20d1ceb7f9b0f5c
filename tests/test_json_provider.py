"""The app's JSON answers (``webmap.json_provider``): orjson's fast path writes what the standard library's
``json`` (the exact slow path, as Flask calls it) writes, falls back to it for what orjson refuses, and writes
``null`` for a float that JSON cannot hold."""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st

from citygrid.webmap.json_provider import IsoJSONProvider, _iso

SHANGHAI, BERLIN = ZoneInfo("Asia/Shanghai"), ZoneInfo("Europe/Berlin")


@dataclass
class Party:
    code: str
    name: str
    since: dt.date


def _app(debug: bool = False) -> Flask:
    app = Flask(__name__)
    app.json = IsoJSONProvider(app)
    app.debug = debug
    return app


def _slow(obj) -> bytes:
    """What Flask's own provider writes for ``obj`` in a compact answer, with our dates: the exact path."""
    return (json.dumps(obj, default=_iso, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n").encode()


def _answer(obj, debug: bool = False) -> bytes:
    app = _app(debug)
    with app.app_context():
        answer = app.json.response(obj)
    assert answer.mimetype == "application/json"
    return answer.get_data()


SUGGESTION = {"deadline_at": dt.datetime(2026, 3, 29, 2, 30, tzinfo=dt.UTC).astimezone(BERLIN),
              "party": {"code": "110105027004", "name": "恋日绿岛社区居委会", "role": "management"}}
CASE = {"case_id": 38218, "description": "恋日绿岛社区附近暴露垃圾（合成）\u2028</script>", "lon": 116.46462801371337,
        "lat": 39.828979937311736, "synthetic": True, "component_obj_id": None, "row_version": 2,
        "reported_at": dt.datetime(2025, 10, 17, 12, 44, 50, 246698, tzinfo=SHANGHAI), "suggestion": SUGGESTION,
        "day": dt.date(2026, 3, 29), "opens": dt.time(8, 30), "naive": dt.datetime(2026, 1, 1, 9),
        # Local mean time: an offset with seconds, which orjson's own form would round to minutes.
        "old": dt.datetime(1900, 1, 1, tzinfo=SHANGHAI),
        "distance_m": 12.5, "zero": -0.0, "big": 2**63 - 1, "tuple": (1, "a"), "uuid": uuid.UUID(int=7),
        "party": Party("P1", "城管执法队", dt.date(2024, 11, 1))}
PAGE = {"queue": "dispatch", "label": "派遣 accepted cases", "counts": {"total": 100, "overdue": 0, "due_soon": 3},
        "counts_at_least": ["total"], "limit": 20, "offset": 0, "cases": [CASE]}


def test_a_page_is_written_as_json_writes_it():
    assert _answer(PAGE) == _slow(PAGE)
    assert b"+08:05:43" in _answer(PAGE) and "恋日".encode() in _answer(PAGE)


@pytest.mark.parametrize("refused", [{1: "a key that is not text"}, {"n": 2**70}, {"x": np.float64(0.5)},
                                     {"x": [np.float64(1.25), {"deep": 2**64}]}])
def test_what_orjson_refuses_is_written_by_json(refused):
    assert _answer(refused) == _slow(refused)


def test_what_neither_writes_is_refused():
    with pytest.raises(TypeError):
        _answer({"s": {1, 2}})


def test_a_float_json_cannot_hold_is_null():
    assert json.loads(_answer({"a": math.nan, "b": math.inf, "c": -math.inf})) == {"a": None, "b": None, "c": None}


def test_debug_answers_are_indented_by_json():
    assert _answer(PAGE, debug=True) == (json.dumps(PAGE, default=_iso, ensure_ascii=False, sort_keys=True,
                                                    indent=2) + "\n").encode()


_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.datetimes(timezones=st.sampled_from([None, SHANGHAI, BERLIN, ZoneInfo("America/St_Johns")]))
    | st.dates(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(_VALUES)
def test_any_value_is_the_same_json_as_json_writes(value):
    # The same values; the text too, but for how a float below 1e-4 is spelled (1e-7 for 1e-07).
    fast, slow = _answer(value), _slow(value)
    assert json.loads(fast) == json.loads(slow)
    if "e-" not in slow.decode() and "0.0000" not in fast.decode():
        assert fast == slow
