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
