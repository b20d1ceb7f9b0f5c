"""The bench results file: required fields, ratio, merge by name."""

from __future__ import annotations

import json

import pytest

from bench.results import entry, merge
from bench.run import main


def test_entry_ratio_and_merge_keeps_other_names(tmp_path):
    path = tmp_path / "results.json"
    merge([entry("a", 10, 1.0, "x", 4.0, "n"), entry("b", 10, 2.0, "y", 1.0, "n")], path)
    merge([entry("a", 10, 3.0, "x", 3.0, "again")], path)
    data = json.loads(path.read_text())
    assert set(data) == {"machine", "benchmarks"} and data["machine"]["cores"]
    by_name = {e["name"]: e for e in data["benchmarks"]}
    assert by_name["a"]["ratio"] == 1.0 and by_name["a"]["notes"] == "again" and by_name["b"]["ratio"] == 2.0


def test_entry_missing_fields_rejected(tmp_path):
    with pytest.raises(ValueError, match="lacks"):
        merge([{"name": "z"}], tmp_path / "r.json")


def test_unknown_benchmark_exits_2(capsys):
    assert main(["--only", "nope"]) == 2
    assert "unknown benchmark" in capsys.readouterr().err



def test_desk_queue_bench_runs_end_to_end_on_a_small_caseload(bj, beijing_db, tmp_path):
    """``desk_queue`` on 2,000 cases (400 open) in the test's rolled-back transaction: every queue is asked for,
    each holds cases, and the entry has the fields the results file and the issue's targets read."""
    from bench.bench_desk import measure

    result = measure(bj, beijing_db.database, n=2000, n_open=400, requests=3)
    assert set(result["queue_p95_s"]) == {"accept", "dispatch", "dispose", "verify", "check", "callback",
                                          "investigate"}
    assert result["p95_s"] == max(result["queue_p95_s"].values())
    # The gating ratio is the highest of the queues' ratios, each queue against its own list.
    gating = result["ratio_queue"]
    assert result["queue_ratio"][gating] == max(result["queue_ratio"].values()) > 0
    assert (result["ours_s"], result["anchor_s"]) == (result["queue_p95_s"][gating],
                                                      result["anchor_queue_p95_s"][gating])
    assert result["ratio"] == pytest.approx(result["queue_ratio"][gating], abs=0.002)
    assert sum(result["statuses"].values()) == 2000 and all(v > 0 for v in result["queue_totals"].values())
    merge([result], tmp_path / "results.json")


def test_grid_edit_bench_runs_end_to_end_on_a_few_edits(bj, tmp_path):
    """``grid_edit`` on four edits of a Chaoyang draft in the test's rolled-back transaction, through the editing
    engine: the entry has the fields the results file and the issue's targets read."""
    from bench.bench_grid_edit import measure

    result = measure(bj, n_edits=4)
    assert result["through"] == "edits.apply" and result["n"] == 4 and sum(result["edits"].values()) == 4
    assert result["unit_grids"] > 8000 and 0 < result["p95_s"] == result["ours_s"] and result["ratio"] > 0
    assert result["topology_p95_s"] > 0 and result["anchor_s"] > 0
    merge([result], tmp_path / "results.json")
