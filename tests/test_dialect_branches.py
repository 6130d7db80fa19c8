"""Every difference between PostGIS and SpatiaLite lives in ``gridcity/spatial.py`` (issue 10).

The engine's own set-up (connection hooks, transaction modes) is in ``gridcity/database.py`` and a column
type's bind/result processing in ``gridcity/types.py``; any other module that branches on the dialect, or
imports a dialect's SQL constructs, fails here and should call a function of ``gridcity.spatial`` instead.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gridcity", "components", "casework", "dispatch", "evaluation", "mobile_api", "gis_data")
ALLOWED = {"gridcity/spatial.py", "gridcity/database.py", "gridcity/types.py"}
BRANCH = re.compile(
    r"dialect\.name|sqlalchemy\.dialects|from sqlalchemy\.dialects|\bis_postgres\w*\s*=|"
    r"[=!]=\s*\"(?:postgresql|sqlite)\"|\"(?:postgresql|sqlite)\"\s*[=!]=|startswith\(\"(?:postgresql|sqlite)"
)


def branches() -> list[str]:
    found = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel in ALLOWED:
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if BRANCH.search(line):
                    found.append(f"{rel}:{n}: {line.strip()}")
    return found


def test_no_dialect_branch_outside_spatial() -> None:
    assert branches() == []


def test_the_scan_sees_a_branch() -> None:
    assert BRANCH.search('    if session.get_bind().dialect.name == "postgresql":')
    assert BRANCH.search("from sqlalchemy.dialects import postgresql, sqlite")
    assert BRANCH.search('    if spatial.dialect(session) != "postgresql":')
    assert BRANCH.search('        return self.database_url.startswith("postgresql")')
