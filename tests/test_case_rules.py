"""Case rules are read once from the configured data directory and passed in (#20, #21): an app built with
another data directory dispatches and escalates by that directory's rules, not by the environment's."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from citygrid.app import create_app
from citygrid.cases.calendar import DeadlineTable, WorkingCalendar
from citygrid.cases.escalation import EscalationRules
from citygrid.cases.rules import CaseRules, DispatchRules
from citygrid.config import Settings
from citygrid.errors import InvalidInput
from tests.conftest import rollback_backend, signed_in, user_token

REPORT = {"lat": 39.93, "kind": "event", "class_code": "0102", "description": "暴露垃圾一堆",
          "source": "supervisor"}


def write_rules(directory: Path, dispatch: str, escalation: str = "") -> Path:
    """A data directory holding only ``dispatch.yaml`` (and ``escalation.yaml`` when given)."""
    directory.mkdir()
    (directory / "dispatch.yaml").write_text(dispatch, encoding="utf-8")
    if escalation:
        (directory / "escalation.yaml").write_text(escalation, encoding="utf-8")
    return directory


def report_and_dispatch(client, lon: float) -> dict:
    """Report ``REPORT`` at ``lon`` (WGS84), accept and dispatch it through the HTTP API; the dispatched case."""
    made = client.post("/api/v1/cases", json={**REPORT, "lon": lon})
    assert made.status_code == 201, made.get_json()
    case = made.get_json()["case"]
    url = f"/api/v1/cases/{case['case_id']}/transitions"
    assert client.post(url, json={"action": "accept"}).status_code == 200
    dispatched = client.post(url, json={"action": "dispatch"})
    assert dispatched.status_code == 200, dispatched.get_json()
    return dispatched.get_json()


def test_an_app_follows_the_rules_of_its_own_data_directory(bj, beijing_db, tmp_path, monkeypatch):
    # its own directory starts 0102 at district level, whose department (levels.district) is SW (#21: the rule
    # of the case's level decides)
    own = write_rules(tmp_path / "own",
                      "rules:\n  event: management\nlevels:\n  district: {default: SW}\n",
                      "initial_level:\n  event/0102: district\n")
    elsewhere = write_rules(tmp_path / "environment", "rules:\n  event: responsibility\n")
    monkeypatch.setenv("CITYGRID_DATA_DIR", str(elsewhere))
    bj.execute(sa.text("INSERT INTO parties (district_code, kind, code, name) "
                       "VALUES ('110105', 'department', 'SW', '环卫中心')"))
    token = user_token(bj, "rules-admin", ["admin"])

    def client(config: dict):
        app = create_app({"CITYGRID_BACKEND": rollback_backend(bj, beijing_db.database or ""), "TESTING": True,
                          **config})
        return signed_in(app.test_client(), token)

    own_case = report_and_dispatch(client({"CITYGRID_SETTINGS": Settings(data_dir=own)}), 116.48)
    assert own_case["attrs"]["dispatched_to"]["code"] == "SW"
    assert own_case["attrs"]["dispatched_to"]["rule"] == "level district: default"
    assert own_case["attrs"]["level"] == "district"
    # The same report (1 km away, not a duplicate) through an app configured from the environment follows the
    # environment's directory.
    env_case = report_and_dispatch(client({}), 116.49)
    assert env_case["attrs"]["dispatched_to"]["rule"] == "grid responsibility"
    assert env_case["attrs"]["level"] == "community"


def test_rules_load_from_a_directory_with_built_in_defaults(tmp_path):
    empty = CaseRules.load(tmp_path)
    assert empty.dispatch == DispatchRules() and empty.escalation == EscalationRules()
    assert empty.deadlines == DeadlineTable(defaults={}) and empty.calendar == WorkingCalendar()
    assert empty.model_path("cjt214") == tmp_path / "models" / "cjt214.joblib"
    assert CaseRules().model_path("cjt214") is None
    # a kind given limits the text to that kind's classes: the taxonomy classifier, not the trained model
    assert empty.model_for("cjt214", None) == empty.model_path("cjt214") and empty.model_for("cjt214", "event") is None
    shipped = CaseRules.load(Path(__file__).resolve().parent.parent / "data")
    assert shipped.dispatch.rule_for("component", "0118") == "component_owner"
    assert shipped.dispatch.rule_for("event", "0102") == "frontage_unit"  # 暴露垃圾: 门前三包, else management
    assert shipped.dispatch.rule_for("event", "0505") == "management"
    assert shipped.escalation.initial_level("event", "0401") == "district"
    assert shipped.deadlines.rule_for("event", "0102").working_hours == 4


@pytest.mark.parametrize(("dispatch", "escalation", "needle"), [
    ("- a list\n", "", "must be a mapping"),
    ("rules: {}\n", "initial_level:\n  event/04: city\n", "not one of community"),
])
def test_bad_rule_files_are_refused_by_name(tmp_path, dispatch, escalation, needle):
    directory = write_rules(tmp_path / "bad", dispatch, escalation)
    with pytest.raises(InvalidInput, match=needle):
        CaseRules.load(directory)
