#!/usr/bin/env bash
# Run gridcity: installs what is missing, migrates the SpatiaLite database in ./data, loads the demo city and
# its logins (idempotent), prints the URL and logins, and serves. Configure with GRIDCITY_* variables.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/gridcity serve --demo --host "${HOST:-127.0.0.1}" --port "${PORT:-8000}"
