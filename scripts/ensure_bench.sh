#!/usr/bin/env bash
# Tools the benchmarks compare against: ogr2ogr (Debian gdal-bin; installed when root, else the command is
# printed) and pygeoapi 0.24 with its PostgreSQL provider (ogc_items) in a virtual environment of its own,
# .venv-bench/, never in the product's .venv.
set -euo pipefail
if ! command -v ogr2ogr >/dev/null; then
  if [ "$(id -u)" != 0 ]; then
    echo "make bench needs ogr2ogr: sudo apt-get install -y gdal-bin" >&2
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends gdal-bin
fi
bench_venv="${BENCH_VENV:-.venv-bench}"
if ! "$bench_venv/bin/python" -c 'import pygeoapi, sqlalchemy, geoalchemy2, psycopg2, gunicorn' 2>/dev/null; then
  # pygeoapi 0.22 and later need Python >= 3.12: the first of $BENCH_PYTHON, python3.13/3.12 on the PATH, or
  # pyenv's (the machine's image has them under ~/.pyenv/versions)
  python=""
  for candidate in ${BENCH_PYTHON:-} python3.13 python3.12 "$HOME"/.pyenv/versions/3.1[23]*/bin/python3; do
    if command -v "$candidate" >/dev/null 2>&1 \
        && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
      python="$candidate"
      break
    fi
  done
  if [ -z "$python" ]; then
    echo "the ogc_items bench needs Python >= 3.12 for pygeoapi 0.24 (set BENCH_PYTHON)" >&2
    exit 1
  fi
  [ -x "$bench_venv/bin/python" ] || "$python" -m venv "$bench_venv"
  "$bench_venv/bin/python" -m pip install -q --upgrade pip
  # pygeoapi's PostgreSQL provider (pygeoapi.provider.sql) needs SQLAlchemy, GeoAlchemy2 and psycopg2
  "$bench_venv/bin/python" -m pip install -q "pygeoapi==0.24.*" "SQLAlchemy>=2" GeoAlchemy2 psycopg2-binary \
    gunicorn
fi
