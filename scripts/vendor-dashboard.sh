#!/usr/bin/env bash
# Re-fetches the dashboard's one vendored asset, uPlot (MIT), at a pinned version from the npm
# registry, into src/api/ui/vendor/ (committed: `cargo build` needs no Node and the page no CDN).
# Needs npm and network; check the printed digest against the one in vendor/VERSION after a bump.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=1.6.32
dest=src/api/ui/vendor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack --silent "uplot@$VERSION" >/dev/null && tar xzf "uplot-$VERSION.tgz")
cp "$work/package/dist/uPlot.iife.min.js" "$dest/uplot.min.js"
cp "$work/package/dist/uPlot.min.css" "$dest/uplot.min.css"
cp "$work/package/LICENSE" "$dest/uplot.LICENSE"
{
  echo "uplot $VERSION (https://www.npmjs.com/package/uplot), fetched by scripts/vendor-dashboard.sh"
  (cd "$dest" && sha256sum uplot.min.js uplot.min.css uplot.LICENSE)
} > "$dest/VERSION"
cat "$dest/VERSION"
