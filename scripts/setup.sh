#!/usr/bin/env bash
# Install everything gridcity needs on a Debian/Ubuntu machine (idempotent).
#   scripts/setup.sh          runtime: SpatiaLite module, a Python venv with the app
#   scripts/setup.sh --test   also PostGIS, Chromium and the test tools
# System packages are installed with apt-get (as root, or through sudo) only when one is missing; every later
# run needs neither root nor network.
set -euo pipefail
cd "$(dirname "$0")/.."
want_test=0
[ "${1:-}" = "--test" ] && want_test=1

# ca-certificates: pip and npm fetch over HTTPS (a minimal Debian has no CA bundle).
pkgs=(libsqlite3-mod-spatialite python3-venv ca-certificates)
# Node.js and npm install the front-end libraries (package-lock.json); only when no npm is on the PATH.
command -v npm >/dev/null || pkgs+=(nodejs npm)
# Tests: PostgreSQL with PostGIS (scripts/test.sh starts a throwaway cluster when no server answers),
# Chromium and CJK fonts for the browser tests, libatomic1 for Playwright's driver (Node), which a minimal
# Debian lacks.
[ $want_test = 1 ] && pkgs+=(postgresql-15-postgis-3 chromium fonts-noto-cjk libatomic1)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing system packages: ${missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi
extra=""
[ $want_test = 1 ] && extra="[test]"
# The install is editable, so code changes need nothing; we reinstall (network) only when what pyproject.toml
# declares (dependencies, entry points, build system) changed, so that later runs work offline.
stamp=".venv/.installed$extra"
declared=$(.venv/bin/python -c "import hashlib, json, tomllib; d = tomllib.load(open('pyproject.toml', 'rb')); \
print(hashlib.sha256(json.dumps([d['project'], d['build-system']], sort_keys=True).encode()).hexdigest())")
# An install with the test extra holds the runtime one too (scripts/run.sh after scripts/test.sh, offline).
installed() { [ -f "$1" ] && [ "$(cat "$1")" = "$declared" ]; }
if ! installed "$stamp" && ! { [ -z "$extra" ] && installed ".venv/.installed[test]"; }; then
  .venv/bin/pip install -q -e ".$extra"
  echo "$declared" > "$stamp"
fi

# Front-end libraries, exactly as locked; no install scripts run (nothing is fetched beyond the registry).
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
fi
