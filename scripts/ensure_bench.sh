#!/usr/bin/env bash
# Tools the benchmarks compare against: ogr2ogr (Debian gdal-bin). Installed when root, else the command is printed.
set -euo pipefail
command -v ogr2ogr >/dev/null && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "make bench needs ogr2ogr: sudo apt-get install -y gdal-bin" >&2
  exit 1
fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends gdal-bin
