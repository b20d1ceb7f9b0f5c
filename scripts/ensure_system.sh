#!/usr/bin/env bash
# Make sure PostgreSQL and a matching PostGIS 3 are installed (Debian packages).
# As root: installs them with apt-get. Otherwise: prints the exact command and stops.
set -euo pipefail

pg_bin_dir() {
  # Newest PostgreSQL server installed under /usr/lib/postgresql/<major>/bin.
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

have_postgis() {
  local major="$1"
  ls "/usr/share/postgresql/$major/extension/postgis.control" >/dev/null 2>&1
}

# Headless Chromium and CJK fonts for the browser tests and page screenshots (Debian packages).
browser_pkgs=""
command -v chromium >/dev/null || browser_pkgs="chromium"
fc-list 2>/dev/null | grep -qi "Noto Sans CJK" || browser_pkgs="$browser_pkgs fonts-noto-cjk"
if [ -n "${browser_pkgs// /}" ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing$browser_pkgs (Debian packages)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $browser_pkgs \
      || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $browser_pkgs; }
  else
    echo "the browser tests need: sudo apt-get install -y$browser_pkgs" >&2
  fi
fi

# QGIS (Debian's python3-qgis, run by /usr/bin/python3) for the QGIS client tests of the OGC API, the project
# file and the styled GeoPackages (#25).
if ! /usr/bin/python3 -c 'import qgis.core' >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing python3-qgis qgis-providers (Debian packages)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-qgis qgis-providers \
      || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-qgis qgis-providers; }
  else
    echo "the QGIS tests need: sudo apt-get install -y python3-qgis qgis-providers" >&2
  fi
fi

bin=$(pg_bin_dir || true)
major=""
if [ -n "$bin" ] && [ -x "$bin/initdb" ]; then
  major=$(basename "$(dirname "$bin")")
  if have_postgis "$major"; then
    exit 0
  fi
fi

if [ -z "$major" ]; then
  # Which major would Debian install? The 'postgresql' metapackage depends on postgresql-<major>.
  major=$(apt-cache depends postgresql 2>/dev/null | sed -n 's/.*Depends: postgresql-\([0-9][0-9]*\)$/\1/p' | head -n 1)
fi
pkgs="postgresql postgresql-${major:-15}-postgis-3"
if [ "$(id -u)" != 0 ]; then
  echo "PostgreSQL with PostGIS is not installed. Install it with:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y $pkgs" >&2
  exit 1
fi
echo "installing $pkgs (Debian packages)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
if [ -z "$major" ]; then
  major=$(apt-cache depends postgresql | sed -n 's/.*Depends: postgresql-\([0-9][0-9]*\)$/\1/p' | head -n 1)
  pkgs="postgresql postgresql-${major}-postgis-3"
fi
apt-get install -y -q --no-install-recommends $pkgs
have_postgis "$major" || { echo "PostGIS for PostgreSQL $major did not install" >&2; exit 1; }
