#!/usr/bin/env bash
# Regenerate the initial migration from the models (pre-release: one migration, rebuilt until the first
# release). Autogenerates against a scratch PostGIS database; SpatiaLite runs the same file.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
db="gc_gen_$$"
psql -U postgres -h 127.0.0.1 -qc "CREATE DATABASE $db"
trap 'psql -U postgres -h 127.0.0.1 -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"' EXIT
psql -U postgres -h 127.0.0.1 -d "$db" -qc "CREATE EXTENSION postgis"
tmp=$(mktemp -d)
"$PY" - "$db" "$tmp" <<'PY'
import shutil, sys
from alembic import command
from gridcity.migrate import alembic_config
db, tmp = sys.argv[1], sys.argv[2]
cfg = alembic_config(f"postgresql+psycopg://postgres@127.0.0.1:5432/{db}")
cfg.set_main_option("version_locations", tmp)
command.revision(cfg, message="initial", autogenerate=True, rev_id="0001", version_path=tmp)
PY
mv "$tmp"/0001_initial.py migrations/versions/0001_initial.py
rm -rf "$tmp"
echo "migrations/versions/0001_initial.py regenerated"
