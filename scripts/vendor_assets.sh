#!/usr/bin/env bash
# Refresh the vendored browser assets from the npm registry (build time only; the app never fetches at run
# time). Versions are pinned here and recorded in citygrid/webmap/static/vendor/VERSIONS.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=citygrid/webmap/static/vendor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
LEAFLET=1.9.4
(cd "$work" && npm pack --silent "leaflet@$LEAFLET" >/dev/null && tar xzf "leaflet-$LEAFLET.tgz")
mkdir -p "$dest/leaflet"
cp "$work/package/dist/leaflet.js" "$work/package/dist/leaflet.css" "$work/package/LICENSE" "$dest/leaflet/"
cp -r "$work/package/dist/images" "$dest/leaflet/"
printf 'leaflet %s (BSD-2-Clause) from the npm registry\n' "$LEAFLET" > "$dest/VERSIONS"
