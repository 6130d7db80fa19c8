#!/usr/bin/env bash
# Run the whole test suite on SpatiaLite and on PostGIS, plus the layering, lint and type checks.
# Installs what it needs first (scripts/setup.sh --test: needs root or sudo the first time only).
# PostGIS: uses GRIDCITY_TEST_PG_ADMIN if set, else a server that trusts user postgres on 127.0.0.1:5432;
# when neither answers, starts a throwaway cluster of its own (initdb in a temporary folder, a free port,
# trust auth) and removes it at exit. Works without network once installed. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test

pg_answers() {
  .venv/bin/python - "$1" <<'PY' 2>/dev/null
import sys
import sqlalchemy as sa
sa.create_engine(sys.argv[1], connect_args={"connect_timeout": 5}).connect().close()
PY
}

PG_DEFAULT=postgresql+psycopg://postgres@127.0.0.1:5432/postgres
if [ -n "${GRIDCITY_TEST_PG_ADMIN:-}" ]; then
  if ! pg_answers "$GRIDCITY_TEST_PG_ADMIN"; then
    echo "No PostgreSQL server answers at GRIDCITY_TEST_PG_ADMIN=$GRIDCITY_TEST_PG_ADMIN" >&2
    exit 1
  fi
elif pg_answers "$PG_DEFAULT"; then
  export GRIDCITY_TEST_PG_ADMIN=$PG_DEFAULT
else
  # A throwaway cluster: nothing of it outlives this script.
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ]; then
    echo "No PostgreSQL server answers at $PG_DEFAULT and no initdb is installed (scripts/setup.sh --test)." >&2
    exit 1
  fi
  pg_tmp=$(mktemp -d "${TMPDIR:-/tmp}/gridcity-pg.XXXXXX")
  as_pg=()
  if [ "$(id -u)" -eq 0 ]; then
    # initdb refuses to run as root: the cluster belongs to the postgres user (created by the package).
    chown postgres: "$pg_tmp"
    as_pg=(runuser -u postgres --)
  fi
  cd_pg() { (cd "$pg_tmp" && "${as_pg[@]}" "$@"); }  # the postgres user may not enter the checkout
  pg_port=$(.venv/bin/python -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
  cleanup_pg() {
    cd_pg "$pg_bin/pg_ctl" -D "$pg_tmp/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$pg_tmp"
  }
  trap cleanup_pg EXIT
  echo "== no PostgreSQL server answers: a throwaway cluster in $pg_tmp on port $pg_port"
  cd_pg "$pg_bin/initdb" -D "$pg_tmp/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$pg_tmp/initdb.log" 2>&1 \
    || { cat "$pg_tmp/initdb.log" >&2; exit 1; }
  cd_pg "$pg_bin/pg_ctl" -D "$pg_tmp/data" -l "$pg_tmp/server.log" -w -t 60 start \
    -o "-p $pg_port -k $pg_tmp -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off" >/dev/null \
    || { cat "$pg_tmp/server.log" >&2; exit 1; }
  export GRIDCITY_TEST_PG_ADMIN=postgresql+psycopg://postgres@127.0.0.1:$pg_port/postgres
  pg_answers "$GRIDCITY_TEST_PG_ADMIN" || { cat "$pg_tmp/server.log" >&2; exit 1; }
fi

echo "== layering (import-linter), lint and format (ruff), types (mypy)"
.venv/bin/lint-imports
.venv/bin/ruff check .
.venv/bin/ruff format --check .
if [ -x .venv/bin/mypy ]; then .venv/bin/mypy; fi

# Both databases run even when the first has a failure (each prints its own summary); the script then fails.
status=0
echo "== tests on SpatiaLite"
.venv/bin/pytest --db=spatialite "$@" || status=$?
echo "== tests on PostGIS ($GRIDCITY_TEST_PG_ADMIN)"
.venv/bin/pytest --db=postgis "$@" || status=$?
exit "$status"
