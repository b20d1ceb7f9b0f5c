"""SYNTHETIC district departments for the demo districts, so a case raised to district level has a party to go to.

``dispatch.yaml`` (``levels.district``) names, by class, the district department a district-level case goes to
(seed 000's 整改无效 path: community → the street office's 城建科 → a district department; DOMAIN.md §6). A city
lists its real departments (``citygrid ownership import`` creates parties of kind ``department``); the demo
districts have no such public list, so ``load-demo`` adds one party per code the rules name, under a generic
function name marked （合成） and a contact saying it is synthetic: no front end shows one as a real office.
Street offices need nothing here: they are derived from the real street codes (``ownership``).
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

from citygrid.cases.rules import DispatchRules
from citygrid.responsibility import store

# The function of each department code suffix the shipped dispatch.yaml uses ("{district}-cgw" …).
FUNCTIONS = {"cgw": "城市管理部门", "zjw": "住房和城乡建设部门", "yjj": "应急管理部门", "cgzf": "城市管理执法部门",
             "jtw": "交通部门", "ylj": "园林绿化部门"}
SYNTHETIC_CONTACT = "SYNTHETIC demo department (#21): generic name, made-up code; not a real office's contact"


def ensure_demo_departments(conn: Connection, rules: DispatchRules, district: str, district_name: str) -> int:
    """Add a SYNTHETIC ``department`` party to ``district`` for each code ``rules.district`` names that the
    district lacks (named 〈district〉〈function〉（合成）; a code of unknown function is named after itself).
    Returns how many were added; parties already there (a city's own) stay as they are."""
    codes = sorted({code.replace("{district}", district) for code in rules.district.values()})
    rows = []
    for code in codes:
        function = FUNCTIONS.get(code.removeprefix(f"{district}-"), f"部门 {code}")
        rows.append({"code": code, "name": f"{district_name}{function}（合成）", "contact": SYNTHETIC_CONTACT})
    return store.ensure_departments(conn, district, rows)
