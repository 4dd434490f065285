#!/usr/bin/env bash
# The project's test command (the README's second command, and what .ci/run runs):
# every package with the race detector, the store's conformance suite against
# SQLite and PostgreSQL, the end-to-end tests that build the real binary, and
# the browser tests of the web UI in headless Chromium.
#
# PostgreSQL: GOSCALER_TEST_POSTGRES (default postgres://postgres@127.0.0.1:5432/postgres).
# Chromium:   /usr/bin/chromium (Debian's package); playwright-core comes from npm.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOSCALER_TEST_POSTGRES="${GOSCALER_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}"
# Unit and package tests with the race detector; e2e separately (it builds the binary itself).
go test -race -count=1 -timeout 20m ./internal/... "$@"
go test -count=1 -timeout 25m ./e2e/... "$@"
# Browser tests: playwright-core drives Debian's Chromium (no browser download).
if [ ! -d ui-tests/node_modules/playwright-core ]; then
  npm ci --prefix ui-tests --no-audit --no-fund
fi
npm test --prefix ui-tests
