"""The shape of the code (#20), checked the way a reviewer would: by reading the source, not by running it.

Each rule here is one that ``ARCHITECTURE.md`` states and that drifted before #20: SQL only in store modules,
the web layer reading through domain functions, one direction of imports between the layers, domain code that
neither imports Flask nor reads the environment. A failure names the file and line that broke the rule.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "citygrid"

# What a statement of SQL starts with (upper case, as every query here is written), inside any string constant.
_SQL = re.compile(r"^\s*\(?\s*(SELECT|INSERT INTO|UPDATE \w+ SET|DELETE FROM|WITH \w+ AS|CREATE |ALTER |DROP |"
                  r"COPY |ANALYZE|TRUNCATE|SET (LOCAL |SESSION )?\w+ (TO|=))\b")
# Modules that may hold SQL besides each package's store.py: the database's own life cycle (create, drop,
# deployment settings), tile layers written as SQL data (spatial/tiles.py, built from named pieces like tipg's),
# and GDAL's SQLite dialect used to inspect a GeoPackage before GDAL opens it (not our database).
_SQL_HOMES = {"spatial/db.py", "spatial/tiles.py", "loaders/gdalsafe.py"}
# The layers, bottom up: a module may import its own layer and those below, never one above. ``spatial`` (the
# database, CRS, geocoding) is the floor; ``loaders`` read files and use its CRS parsing, so they stand on it.
_LAYERS = [
    {"__init__", "errors", "config", "gcpause", "periods"},
    {"spatial"},
    {"loaders", "codes"},
    {"gridding", "components_survey", "cases", "accounts", "districts", "responsibility", "backup", "deploy",
     "desk", "evidence"},
    {"analysis", "interop", "recurrence", "hotspots", "evaluation"},
    {"webmap"},
    {"app", "cli"},
]
_FRONTS = {"cli.py", "app.py"}
_DOMAIN = {"loaders", "spatial", "codes", "periods", "gridding", "components_survey", "cases", "accounts",
           "districts", "responsibility", "analysis", "interop", "backup", "deploy", "errors",
           "desk", "evidence", "recurrence", "hotspots", "evaluation"}


def _modules() -> list[tuple[str, ast.Module]]:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if "/migrations/" not in rel:
            found.append((rel, ast.parse(path.read_text(encoding="utf-8"), filename=rel)))
    return found


MODULES = _modules()


def _top(rel: str) -> str:
    return rel.split("/")[0].removesuffix(".py")


def _imports(tree: ast.Module) -> list[tuple[int, str]]:
    """Every ``citygrid.…`` module a file imports, with its line (``from citygrid.x import y`` gives
    ``citygrid.x.y`` too, since ``y`` may be a module)."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append((node.lineno, node.module))
            names += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return [(line, n) for line, n in names if n.startswith("citygrid")]


def _layer(top: str) -> int | None:
    return next((i for i, layer in enumerate(_LAYERS) if top in layer), None)


def test_sql_lives_in_store_modules() -> None:
    stray = []
    for rel, tree in MODULES:
        if rel.endswith("store.py") or rel in _SQL_HOMES:
            continue
        stray += [f"{rel}:{node.lineno}: {node.value.strip()[:50]!r}" for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and isinstance(node.value, str) and _SQL.match(node.value)]
    assert stray == [], "SQL outside a store module:\n" + "\n".join(stray)


def test_the_web_layer_reads_through_domain_functions() -> None:
    """Pages, the API, Open311 and the CLI call the same read functions; none of them opens a store module."""
    stray = [f"{rel}:{line}: {name}" for rel, tree in MODULES if rel.startswith("webmap/") or rel in _FRONTS
             for line, name in _imports(tree) if name.endswith(".store") or ".store." in name]
    assert stray == [], "front ends importing a store module (call the package's domain functions):\n" + "\n".join(
        stray)


def test_imports_run_one_way_down_the_layers() -> None:
    upward = []
    for rel, tree in MODULES:
        own = _layer(_top(rel))
        assert own is not None, f"{rel}: its package is in no layer of this test; add it where it belongs"
        for line, name in _imports(tree):
            parts = name.split(".")
            if len(parts) < 2 or _top(parts[1]) == _top(rel):
                continue
            theirs = _layer(parts[1])
            if theirs is not None and theirs > own:
                upward.append(f"{rel}:{line}: imports {name} (layer {theirs} above {own})")
    assert upward == [], "imports that run up the layers:\n" + "\n".join(upward)


@pytest.mark.parametrize("rel,tree", [(rel, tree) for rel, tree in MODULES if _top(rel) in _DOMAIN],
                         ids=lambda v: v if isinstance(v, str) else "")
def test_domain_code_neither_imports_flask_nor_reads_the_environment(rel: str, tree: ast.Module) -> None:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"line {node.lineno}: imports {m}" for m in mods if m.split(".")[0] in ("flask", "werkzeug")]
        elif isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv") and \
                isinstance(node.value, ast.Name) and node.value.id == "os":
            found.append(f"line {node.lineno}: reads os.{node.attr}")
        elif isinstance(node, ast.Attribute) and node.attr == "from_env":
            found.append(f"line {node.lineno}: calls Settings.from_env (configuration is loaded once and passed in)")
    assert found == [], f"{rel}:\n" + "\n".join(found)


def test_only_the_entry_points_read_the_environment() -> None:
    """``config.Settings.from_env`` reads the environment; ``app.py`` and ``cli.py`` call it once per app or
    command and pass the result in. The web layer reads the app's settings, never the environment."""
    found = []
    for rel, tree in MODULES:
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            reads = node.attr in ("environ", "getenv") and isinstance(node.value, ast.Name) and node.value.id == "os"
            if (reads and rel != "config.py") or (node.attr == "from_env" and rel not in ("config.py", *_FRONTS)):
                found.append(f"{rel}:{node.lineno}: {node.attr}")
    assert found == [], "configuration read outside config.py / the entry points:\n" + "\n".join(found)


def test_every_layer_named_here_exists() -> None:
    """The layer table above names the packages as the tree has them (a renamed package must be moved here)."""
    tops = {_top(rel) for rel, _ in MODULES}
    named = set().union(*_LAYERS)
    assert tops <= named, f"packages in no layer: {sorted(tops - named)}"
