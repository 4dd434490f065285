#!/usr/bin/env bash
# Refreshes the web UI's vendored browser libraries (internal/web/static/vendor)
# from npm, at the exact versions and integrity hashes of its package-lock.json,
# and rewrites SHA256SUMS. Only needed to change a version (edit package.json,
# then `npm install --package-lock-only` there); go build needs no Node.
set -euo pipefail
cd "$(dirname "$0")/.."
vendor=internal/web/static/vendor
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$vendor/package.json" "$vendor/package-lock.json" "$tmp/"
(cd "$tmp" && npm ci --ignore-scripts --no-audit --no-fund >/dev/null)
cp "$tmp/node_modules/htmx.org/dist/htmx.min.js" "$vendor/"
cp "$tmp/node_modules/htmx.org/LICENSE" "$vendor/LICENSE.htmx"
cp "$tmp/node_modules/uplot/dist/uPlot.iife.min.js" "$tmp/node_modules/uplot/dist/uPlot.min.css" "$vendor/"
cp "$tmp/node_modules/uplot/LICENSE" "$vendor/LICENSE.uplot"
(cd "$vendor" && sha256sum htmx.min.js uPlot.iife.min.js uPlot.min.css > SHA256SUMS)
echo "vendored:"; cat "$vendor/SHA256SUMS"
