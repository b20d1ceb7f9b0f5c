"""Reading and merging ``bench/results.json``.

Format: ``{"machine": {...}, "benchmarks": [{"name", "n", "ours_s", "anchor", "anchor_s", "ratio", "notes", ...}]}``
with ``ratio = ours_s / anchor_s`` (below 1.0: faster than the anchor). Extra measured fields are allowed.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results.json"
REQUIRED = ("name", "n", "ours_s", "anchor", "anchor_s", "ratio", "notes")


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    mem_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": mem_gib, "python": platform.python_version(),
            "platform": platform.platform()}


def entry(name: str, n: int, ours_s: float, anchor: str, anchor_s: float, notes: str, **extra: Any) -> dict[str, Any]:
    """One benchmark entry with its ratio."""
    return {"name": name, "n": n, "ours_s": round(ours_s, 4), "anchor": anchor, "anchor_s": round(anchor_s, 4),
            "ratio": round(ours_s / anchor_s, 4) if anchor_s > 0 else None, "notes": notes, **extra}


def merge(new_entries: list[dict[str, Any]], path: Path = RESULTS) -> dict[str, Any]:
    """Replace entries of the same name in ``path`` (others are kept) and write it back."""
    for item in new_entries:
        missing = [k for k in REQUIRED if k not in item]
        if missing:
            raise ValueError(f"benchmark entry {item.get('name')} lacks {missing}")
    current: dict[str, Any] = {"machine": {}, "benchmarks": []}
    if path.exists():
        with contextlib.suppress(json.JSONDecodeError):
            current = json.loads(path.read_text())
    names = {e["name"] for e in new_entries}
    kept = [e for e in current.get("benchmarks", []) if e.get("name") not in names]
    result = {"machine": machine(), "benchmarks": sorted(kept + new_entries, key=lambda e: e["name"])}
    path.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
    return result
