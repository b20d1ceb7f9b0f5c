"""A city's class scheme, row by row (``taxonomy.scheme_classes``): every problem in the one RowProblem shape,
``line`` the CSV line (None for a YAML class) and ``where`` as messages name the row. No database."""

from __future__ import annotations

import pytest

from citygrid.components_survey.taxonomy import scheme_classes
from citygrid.errors import InvalidInput


def test_good_rows_become_classes():
    rows = [("line 2", {"code": "A1", "name": "Pothole", "kind": "Event", "open311": "no", "keywords": ["road"]}),
            ("line 3", {"code": "0113", "name": "Hydrant", "kind": "component", "service_code": "HYD"})]
    first, second = scheme_classes(rows, "s.csv")
    assert (first.kind, first.code, first.open311, first.keywords, first.service_code) == \
        ("event", "A1", False, "road", "A1")
    assert (second.code, second.service_code, second.open311) == ("0113", "HYD", True)


def test_every_problem_has_the_one_shape_and_the_first_row_of_a_code_stays():
    rows = [("line 2", {"code": "A1", "name": "", "kind": "incident", "open311": "maybe"}),
            ("line 3", {"code": "A 1", "name": "x\x00", "kind": "event", "group_code": 7}),
            ("class 4", {"code": "0102", "name": "Trash", "kind": "component", "service_code": "a/b"}),
            ("class 5", {"code": "0102", "name": "Trash again", "kind": "component"}),
            ("class 5b", {"code": "B1", "name": "ok", "kind": "event", "service_code": "0102"}),
            ("class 6", {"code": "A7", "name": "\u202eevil", "kind": "event", "description": "x" * 5000})]
    with pytest.raises(InvalidInput, match="problem") as err:
        scheme_classes(rows, "s.yaml")
    details = err.value.details
    assert all(set(d) == {"line", "field", "reason", "severity", "where"} and d["severity"] == "error"
               for d in details)
    found = [(d["line"], d["where"], d["field"]) for d in details]
    assert found == [
        (2, "line 2", "open311"), (2, "line 2", "kind"), (2, "line 2", "name"),
        (3, "line 3", "name"), (3, "line 3", "group_code"), (3, "line 3", "code"), (3, "line 3", "name"),
        (3, "line 3", "service_code"),  # the service code defaults to the (bad) code
        (None, "class 4", "service_code"),
        # class 4 was refused, so class 5 takes code 0102 (and its service code); class 5b may not
        (None, "class 5b", "service_code"),
        (None, "class 6", "name"), (None, "class 6", "description"), (None, "class 6", "name"),
    ]
    assert "control character" in details[3]["reason"] and "quote it" in details[4]["reason"]
    assert "duplicate service code 0102" in details[9]["reason"]
    assert "bidirectional" in details[10]["reason"] and "longer than 1000" in details[11]["reason"]
