"""Bulk import of historic cases (row report, mapping, threshold) and the seeded synthetic history."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from citygrid.cases import synthetic
from citygrid.cases.history import import_cases, load_mapping
from citygrid.cli import cli
from citygrid.errors import InvalidInput

CSV = """案件编号,经度,纬度,小类代码,类型,问题描述,上报时间,状态
H-1,116.48,39.93,0102,event,暴露垃圾,2025-03-01T09:00:00+08:00,closed
H-2,116.47,39.95,0201,event,小广告,2025-03-02T10:00:00+08:00,evaluated
H-3,116.2,39.9,0102,event,区外,2025-03-02T10:00:00+08:00,closed
H-4,116.48,39.93,0999,event,未知类,2025-03-02T10:00:00+08:00,closed
H-5,abc,39.93,0102,event,坏坐标,2025-03-02T10:00:00+08:00,closed
H-6,116.48,39.93,0102,event,坏状态,2025-03-02T10:00:00+08:00,lost
H-7,116.48,39.93,,,没有类别的历史案件,2025-03-02T10:00:00+08:00,closed
"""


def write(tmp_path, text, name="h.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_import_reports_every_bad_row_by_line(bj, tmp_path):
    result = import_cases(bj, write(tmp_path, CSV, encoding="gb18030"), max_bad_ratio=1.0)
    assert result.imported == 2 and result.rows == 7
    reasons = {(p["line"], p["field"]): p["reason"] for p in result.problems}
    assert "outside every district" in reasons[(4, "lon")]
    assert "unknown event class 0999" in reasons[(5, "class_code")]
    assert "number" in reasons[(6, "lon")]
    assert "unknown status" in reasons[(7, "status")]
    assert reasons[(8, "class_code")] == "required in a bulk import"
    stored = bj.execute(sa.text("SELECT status, unit_grid_code IS NOT NULL, reported_at::date::text FROM cases "
                                "WHERE idempotency_key = 'H-2'")).one()
    assert stored == ("evaluated", True, "2025-03-02")
    assert bj.execute(sa.text("SELECT count(*) FROM case_events e JOIN cases c USING (district_code, case_id) "
                              "WHERE c.idempotency_key IN ('H-1', 'H-2') AND e.action = 'import'")).scalar() == 2


def test_import_threshold_and_reimport(bj, tmp_path):
    assert import_cases(bj, write(tmp_path, CSV), max_bad_ratio=0.1).state == "rejected"
    assert bj.execute(sa.text("SELECT count(*) FROM cases WHERE idempotency_key LIKE 'H-%'")).scalar() == 0
    first = import_cases(bj, write(tmp_path, CSV), max_bad_ratio=1.0)
    again = import_cases(bj, write(tmp_path, CSV), max_bad_ratio=1.0)
    assert (first.imported, again.imported) == (2, 0)  # the case numbers are idempotency keys


def test_mapping_file(bj, tmp_path):
    text = "no,x,y,cls,what\nM-1,116.48,39.93,0102,垃圾\n"
    (tmp_path / "m.yaml").write_text("columns: {idempotency_key: 'no', lon: x, lat: y, class_code: cls, "
                                     "description: what}\n", encoding="utf-8")
    result = import_cases(bj, write(tmp_path, text), mapping=load_mapping(tmp_path / "m.yaml"))
    assert result.imported == 1
    (tmp_path / "bad.yaml").write_text("columns: {colour: x}\n")
    with pytest.raises(InvalidInput, match="mapping"):
        load_mapping(tmp_path / "bad.yaml")
    (tmp_path / "bool.yaml").write_text("columns: {idempotency_key: no}\n")
    with pytest.raises(InvalidInput, match="quote them"):
        load_mapping(tmp_path / "bool.yaml")
    with pytest.raises(InvalidInput, match="not in the file"):
        import_cases(bj, write(tmp_path, text), mapping={"lon": "nope"})


def test_synthetic_history_is_plausible_and_labelled(bj):
    result = synthetic.generate(bj, "110105", 600, seed=7)
    assert result.imported == 600 and not result.problems
    rows = bj.execute(sa.text("""SELECT synthetic, description, status, kind || '/' || class_code, unit_grid_code,
                                        extract(month FROM reported_at) FROM cases WHERE synthetic""")).all()
    assert len(rows) == 600 and all(r[0] and r[1].endswith("（合成）") and r[4] for r in rows)
    classes = [r[3] for r in rows]
    assert classes.count("event/0102") > classes.count("event/0101")  # exposed garbage is the most common
    again = synthetic.generate(bj, "110105", 600, seed=7)
    assert again.imported == 0  # same seed, same keys: nothing new


def test_cli_import_and_escalate_overdue(beijing_db, tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["--database", beijing_db.database, "cases", "import", str(write(tmp_path, CSV)),
                                 "--max-bad-ratio", "0.1"])
    assert result.exit_code == 2 and json.loads(result.output)["state"] == "rejected"
    escalated = runner.invoke(cli, ["--database", beijing_db.database, "cases", "escalate-overdue"])
    assert escalated.exit_code == 0 and "escalated" in json.loads(escalated.output)
