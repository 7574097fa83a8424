#!/usr/bin/env bash
# Refreshes the vendored uPlot (the web page's graphs) from the npm registry:
# src/web/assets/vendor/uplot/{uPlot.iife.min.js,uPlot.min.css,LICENSE}.
# Usage: scripts/vendor-uplot.sh [VERSION]   (default: the pinned version below)
set -euo pipefail
VERSION="${1:-1.6.32}"
cd "$(dirname "$0")/.."
dest=src/web/assets/vendor/uplot
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "uplot@$VERSION" >/dev/null)
tar -xzf "$tmp"/uplot-*.tgz -C "$tmp"
got="$(node -p "require('$tmp/package/package.json').version")"
[ "$got" = "$VERSION" ] || { echo "asked for uplot $VERSION, got $got" >&2; exit 1; }
mkdir -p "$dest"
cp "$tmp/package/dist/uPlot.iife.min.js" "$tmp/package/dist/uPlot.min.css" "$tmp/package/LICENSE" "$dest/"
echo "uplot $got -> $dest"
