#!/usr/bin/env bash
# Run the whole test suite on SpatiaLite and on PostGIS, plus the layering and lint checks.
# PostGIS tests need a PostgreSQL server that trusts user postgres on 127.0.0.1:5432 (as on CI), or set
# GRIDCITY_TEST_PG_ADMIN to another admin URL. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test

PG_ADMIN=${GRIDCITY_TEST_PG_ADMIN:-postgresql+psycopg://postgres@127.0.0.1:5432/postgres}
if ! .venv/bin/python -c "import sqlalchemy as sa, sys; sa.create_engine(sys.argv[1]).connect().close()" "$PG_ADMIN" 2>/dev/null; then
  # We try to start a local cluster if one is installed but stopped.
  command -v pg_ctlcluster >/dev/null && pg_ctlcluster --skip-systemctl-redirect 15 main start 2>/dev/null || true
  sleep 2
  if ! .venv/bin/python -c "import sqlalchemy as sa, sys; sa.create_engine(sys.argv[1]).connect().close()" "$PG_ADMIN"; then
    echo "No PostgreSQL server at $PG_ADMIN; set GRIDCITY_TEST_PG_ADMIN to an admin URL (trust or password)." >&2
    exit 1
  fi
fi

echo "== layering (import-linter) and lint (ruff)"
.venv/bin/lint-imports
.venv/bin/ruff check .

echo "== tests on SpatiaLite"
.venv/bin/pytest --db=spatialite "$@"
echo "== tests on PostGIS"
.venv/bin/pytest --db=postgis "$@"
