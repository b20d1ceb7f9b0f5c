"""The ``citygrid`` CLI end to end on a real database: a user's own city from files, status, serve, errors."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from citygrid import deploy
from citygrid.cli import cli
from citygrid.config import Settings
from citygrid.spatial import db
from citygrid.spatial.cluster import ClusterPaths

from .conftest import RUN_ID

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "data" / "demo"
STATUS_KEYS = {"app_version", "postgresql_version", "postgis_version", "schema_revision", "srid", "districts"}
DISTRICT_KEYS = {"code", "name", "area_km2", "streets", "communities", "roads", "road_km"}


@pytest.fixture(scope="module")
def cli_db(server_settings):
    name = f"citygrid_test_cli_{RUN_ID}"
    settings = Settings(database=name, database_url=server_settings.database_url,
                        data_dir=server_settings.data_dir, pg_port=server_settings.pg_port)
    db.drop_database(settings)
    yield name
    db.drop_database(settings)


def run(*args: str, ok: bool = True):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output + result.stderr
    return result


def test_a_users_own_city_from_files(cli_db):
    # stdout is the JSON; the derived time zone is said on stderr
    init = json.loads(run("--database", cli_db, "db", "init", "--srid", "4547", "--name", "郑州").stdout)
    assert init["created"] is True and init["srid"] == 4547 and init["taxonomy_loaded"] is True
    run("--database", cli_db, "districts", "import", str(DEMO / "guancheng" / "guancheng_410104.geojson"),
        "--code", "410104", "--name", "管城回族区", "--crs", "gcj02")
    codes = str(DEMO / "guancheng" / "guancheng_410104_admin_codes.csv")
    street = json.loads(run("--database", cli_db, "areas", "import", codes, "--district", "410104",
                            "--level", "street", "--crs", "gcj02").output)
    community = json.loads(run("--database", cli_db, "areas", "import", codes, "--district", "410104",
                               "--level", "community", "--crs", "gcj02").output)
    assert street["rows"] == 13 and community["rows"] == 122 and community["without_location"] == 75
    roads = json.loads(run("--database", cli_db, "lines", "import",
                           str(DEMO / "zhengzhou_osm_roads" / "zhengzhou_jingkai_roads_osm.geojson"),
                           "--district", "410104", "--kind", "road", "--class-field", "highway").output)
    assert roads["lines_stored"] > 900

    status = json.loads(run("--database", cli_db, "status", "--json").output)
    assert set(status) >= STATUS_KEYS and status["srid"] == 4547 and status["schema_revision"] == db.head_revision()
    (district,) = status["districts"]
    assert set(district) >= DISTRICT_KEYS
    assert (district["code"], district["streets"], district["communities"]) == ("410104", 13, 122)
    assert district["roads"] == roads["lines_stored"] and 200 < district["area_km2"] < 230

    # Idempotent init, and the same SRID is kept.
    again = json.loads(run("--database", cli_db, "db", "init").stdout)
    assert again["created"] is False and again["srid"] == 4547


def test_district_of_another_zone_is_refused_with_the_right_crs(cli_db):
    run("--database", cli_db, "db", "init", "--srid", "4547")
    result = run("--database", cli_db, "districts", "import", str(DEMO / "chaoyang" / "chaoyang_110105.geojson"),
                 "--code", "110105", "--name", "朝阳区", "--crs", "gcj02", ok=False)
    assert result.exit_code == 2 and "EPSG:4548" in result.stderr


@pytest.mark.parametrize(("csv", "district", "exit_code", "needles"), [
    # bad rows are listed with their lines, and nothing is imported
    ("code,name,lon,lat\n4101049990,短,113.7,34.7\n410104999000,远,120,34.7\n", "410104", 2,
     ["2 bad row(s); nothing was imported", "line=2, field=code, reason=street code '4101049990' must be 9 or 12",
      "line=3, field=geometry, reason=point lies", "m outside the district boundary"]),
    ("code,name\n999999001000,x\n", "999999", 3, ["unknown district '999999'; import it first"]),
], ids=["bad-rows", "unknown-district"])
def test_areas_import_refusals_exit_non_zero_with_the_reason(cli_db, tmp_path, csv, district, exit_code, needles):
    run("--database", cli_db, "db", "init", "--srid", "4547")
    path = tmp_path / "areas.csv"
    path.write_text(csv, encoding="utf-8")
    result = run("--database", cli_db, "areas", "import", str(path), "--district", district, "--level", "street",
                 "--crs", "gcj02", ok=False)
    assert result.exit_code == exit_code and all(needle in result.stderr for needle in needles), result.stderr
    assert "Traceback" not in result.output + result.stderr


@pytest.mark.parametrize(("args", "code", "needle"), [
    (["--database", "Bad-Name", "status"], 2, "database name"),
    (["districts", "import", "/nonexistent/x.shp", "--code", "110105", "--name", "x"], 2, "not found"),
    (["districts", "import", str(DEMO / "chaoyang" / "chaoyang_110105.geojson"), "--code", "1", "--name", "x",
      "--crs", "EPSG:99999999"], 2, "unknown CRS"),
    (["load-demo", "shanghai"], 2, "unknown demo"),
    (["--database", "citygrid_no_such_db", "status"], 5, "unreachable"),
])
def test_bad_invocations_exit_non_zero_with_a_message(args, code, needle):
    result = run(*args, ok=False)
    assert result.exit_code == code, result.output
    assert needle in result.stderr and "Traceback" not in result.output + result.stderr


def test_the_command_line_starts_without_the_heavy_libraries():
    # `citygrid --help` and `citygrid db start` took 3 s when the module imported deploy (and through it
    # momepy, geopandas, scikit-learn, OR-Tools): each command now imports what it uses.
    heavy = ("momepy", "geopandas", "sklearn", "ortools", "libpysal", "pyogrio", "pandas", "shapely", "scipy")
    probe = ("import sys, citygrid.cli; "
             "print(sorted({m.split('.')[0] for m in sys.modules} & set(sys.argv[1:])))")
    loaded = subprocess.run([sys.executable, "-c", probe, *heavy], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]", loaded.stdout
    helped = subprocess.run([sys.executable, "-m", "citygrid.cli", "--help"], capture_output=True, text=True)
    assert helped.returncode == 0 and "load-demo" in helped.stdout


def test_db_status_reports_the_embedded_cluster():
    result = run("db", "status", "--json", ok=False)
    if os.environ.get("DATABASE_URL"):
        assert result.exit_code == 2 and "not in use" in result.stderr
    else:
        info = json.loads(result.output)
        assert result.exit_code == 0 and info["running"] and info["initialised"]
        assert Path(info["socket_directory"]).exists() and info["port"] == Settings.from_env().pg_port


def test_cluster_paths_fall_back_when_socket_path_too_long(tmp_path):
    deep = tmp_path / ("x" * 120)
    paths = ClusterPaths.for_data_dir(deep)
    assert str(paths.base).startswith("/var/lib/citygrid/") and len(str(paths.run_dir)) < 100
    assert ClusterPaths.for_data_dir(deep) == paths  # deterministic: every command finds the same cluster


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def prod_server(database: str, workers: int, **popen: object) -> Iterator[tuple[subprocess.Popen, int]]:
    """``citygrid serve --prod`` on a free port in a child process (its stdout piped, as text); killed at the end
    of the block if it is still running. Yields the process and its port."""
    port = free_port()
    cmd = [sys.executable, "-m", "citygrid.cli", "--database", database, "serve", "--prod", "--workers", str(workers),
           "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, **popen)
    try:
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def wait_until_healthy(port: int, timeout_s: float) -> dict:
    """Poll ``/healthz`` on ``port`` until it answers ok, and return its answer; a server still starting refuses
    connections meanwhile."""
    deadline = time.time() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                body = json.load(response)
            assert body["status"] == "ok", body
            return body
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.3)


def test_serve_prints_its_url_and_answers(beijing_db):
    port = free_port()
    secret = deploy.demo_password_file(beijing_db)
    had_secret = secret.exists()  # serve names the file only when it is there as it starts
    cmd = [sys.executable, "-m", "citygrid.cli", "--database", beijing_db.database, "serve", "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in line
        assert wait_until_healthy(port, 20)["srid"] == 4548
        proc.terminate()
        out, err = proc.communicate(timeout=10)
        assert not had_secret or str(secret) in out + line  # where the password is kept, never the password
        if secret.exists():
            assert deploy.demo_password(beijing_db) not in out + line + err
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def make_recipe(target: str) -> list[str]:
    """The command lines of ``target`` in the Makefile (read, not run)."""
    lines = (REPO / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    recipe = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


def test_make_demo_serves_the_way_production_does():
    """``make demo`` runs ``serve --prod`` (gunicorn, graceful stop): a new user's first screen is not Flask's
    development-server warning."""
    serving = [line for line in make_recipe("demo") if " serve " in line]
    assert len(serving) == 1 and " serve --prod " in serving[0] and "$(PORT)" in serving[0]
    # on this machine no proxy stands in front: said so, so the first screen has no proxy warning either
    assert serving[0].startswith("CITYGRID_TRUSTED_PROXY=$${CITYGRID_TRUSTED_PROXY:-none} ")


def test_serve_prod_prints_the_url_and_the_demo_sign_in_and_stops_cleanly(beijing_db):
    """What ``make demo`` shows first: the URL, then who signs in and where the demo password is kept (never the
    password); SIGTERM stops it cleanly."""
    import signal

    names = deploy.demo_accounts(beijing_db)
    secret = deploy.demo_password_file(beijing_db)
    assert names and secret.exists()  # the test database has the demo loaded, as `make demo`'s has
    with prod_server(beijing_db.database, 1, stderr=subprocess.PIPE) as (proc, port):
        url_line, sign_in = proc.stdout.readline(), proc.stdout.readline()
        assert f"at http://127.0.0.1:{port}/" in url_line and "gunicorn" in url_line
        assert "sign in as" in sign_in and str(secret) in sign_in
        assert all(repr(name) in sign_in for name in names)
        wait_until_healthy(port, 60)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err[-2000:]
        assert "development server" not in url_line + sign_in + out + err
        assert deploy.demo_password(beijing_db) not in url_line + sign_in + out + err


def test_load_demo_prints_the_demo_password_once_when_it_is_made(monkeypatch, tmp_path):
    secret = tmp_path / "secrets" / "demo-password"
    monkeypatch.setattr(deploy, "demo_password_file", lambda settings: secret)
    password = deploy.demo_password(Settings())
    assert secret.stat().st_mode & 0o777 == 0o600
    summary = {"database": "citygrid", "district": "110105", "loaded": False, "grids": None, "accounts": ["demo"]}
    monkeypatch.setattr(deploy, "load_demo", lambda settings, demo, force=False: {**summary,
                                                                                  "demo_password_created": True})
    assert password in run("load-demo", "chaoyang").output
    monkeypatch.setattr(deploy, "load_demo", lambda settings, demo, force=False: summary)  # accounts, old password
    again = run("load-demo", "chaoyang").output
    assert password not in again and str(secret) in again
    monkeypatch.setattr(deploy, "load_demo", lambda settings, demo, force=False: {**summary, "accounts": []})
    assert "password" not in run("load-demo", "chaoyang").output


def test_database_url_points_every_command_at_that_server(server_settings):
    """Under DATABASE_URL (make test's second pass, over TCP) nothing uses the embedded socket."""
    url = os.environ.get("DATABASE_URL")
    resolved = db.database_url(Settings.from_env("citygrid_x"))
    if url:
        assert resolved.host == "127.0.0.1" and resolved.database == "citygrid_x"
        assert "host=" not in resolved.render_as_string(hide_password=True)
    else:
        assert resolved.query.get("host") == str(ClusterPaths.for_data_dir(server_settings.data_dir).run_dir)


def test_prod_server_logs_json_and_stops_gracefully(beijing_db):
    import signal

    with prod_server(beijing_db.database, 2, stderr=subprocess.STDOUT) as (proc, port):
        assert "gunicorn" in proc.stdout.readline()
        wait_until_healthy(port, 30)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0
        access = [json.loads(line) for line in output.splitlines() if line.startswith('{"time"') and '"path"' in line]
        assert any(a["path"] == "/healthz" and a["status"] == "200" for a in access)
