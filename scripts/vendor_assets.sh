#!/usr/bin/env bash
# Refresh the vendored browser assets from the npm registry (build time only; the app never fetches at run
# time). Versions are pinned here and recorded in citygrid/webmap/static/vendor/VERSIONS.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=citygrid/webmap/static/vendor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
LEAFLET=1.9.4
VECTORGRID=1.3.0
MARKERCLUSTER=1.5.3
GEOMAN=2.20.2

fetch() {  # fetch NAME VERSION -> unpacked in $work/NAME
    # npm pack prints the tarball's name (a scoped package's drops the '@' and turns '/' into '-').
    (cd "$work" && tgz=$(npm pack --silent "$1@$2" | tail -n 1) && mkdir -p "$1" && tar xzf "$tgz" -C "$1")
}

fetch leaflet "$LEAFLET"
mkdir -p "$dest/leaflet"
cp "$work/leaflet/package/dist/leaflet.js" "$work/leaflet/package/dist/leaflet.css" "$work/leaflet/package/LICENSE" \
   "$dest/leaflet/"
cp -r "$work/leaflet/package/dist/images" "$dest/leaflet/"

fetch leaflet.vectorgrid "$VECTORGRID"
mkdir -p "$dest/vectorgrid"
cp "$work/leaflet.vectorgrid/package/dist/Leaflet.VectorGrid.bundled.min.js" "$dest/vectorgrid/"
cp "$work/leaflet.vectorgrid/package/LICENSE" "$dest/vectorgrid/" 2>/dev/null \
   || printf 'Leaflet.VectorGrid: Beerware licence (see the npm package), bundled with pbf and vector-tile (BSD-3-Clause)\n' \
      > "$dest/vectorgrid/LICENSE"

fetch leaflet.markercluster "$MARKERCLUSTER"
mkdir -p "$dest/markercluster"
cp "$work/leaflet.markercluster/package/dist/leaflet.markercluster.js" \
   "$work/leaflet.markercluster/package/dist/MarkerCluster.css" \
   "$work/leaflet.markercluster/package/dist/MarkerCluster.Default.css" \
   "$work/leaflet.markercluster/package/MIT-LICENCE.txt" "$dest/markercluster/"

fetch @geoman-io/leaflet-geoman-free "$GEOMAN"
mkdir -p "$dest/geoman"
cp "$work/@geoman-io/leaflet-geoman-free/package/dist/leaflet-geoman.js" \
   "$work/@geoman-io/leaflet-geoman-free/package/dist/leaflet-geoman.css" \
   "$work/@geoman-io/leaflet-geoman-free/package/LICENSE" "$dest/geoman/"

{
    printf 'leaflet %s (BSD-2-Clause) from the npm registry\n' "$LEAFLET"
    printf 'leaflet.vectorgrid %s (Beerware; bundles pbf and @mapbox/vector-tile, BSD-3-Clause) from the npm registry\n' \
        "$VECTORGRID"
    printf 'leaflet.markercluster %s (MIT) from the npm registry\n' "$MARKERCLUSTER"
    printf '@geoman-io/leaflet-geoman-free %s (MIT) from the npm registry\n' "$GEOMAN"
} > "$dest/VERSIONS"
