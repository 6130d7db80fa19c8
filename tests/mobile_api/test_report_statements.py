"""How many SQL statements a phone report (``POST /mobile/v1/reports`` with one photo) costs.

Counted like the case actions' budget (``tests/casework/test_statement_counts.py``): SQLAlchemy's
``before_cursor_execute`` over the whole HTTP request (authentication, the idempotency check, claim and
record, the attachment, the case with its event, every subscriber of the app's pipeline), transaction control
not counted. Lookups sent through :meth:`gridcity.spatial.Statement.run` (the bare driver cursor: locating the
report's grid, snapping it to a component) do not pass through that event; the test collects them apart and
counts the grid lookup against the budget all the same.

The point of a report is located once (before the photo work) and that result goes on to the case's creation;
it used to be located three times (precheck before the photos, precheck again and the case's own check in the
write transaction). A new photo's row is inserted with its EXIF-vs-claim flags (it used to be inserted, then
updated with them). The budgets below keep such a statement from coming back unnoticed.
"""

from __future__ import annotations

from typing import Any

import pytest

from components import service as components_service
from gridcity import spatial
from tests.casework.test_statement_counts import counting
from tests.mobile_api.conftest import CELL, LAT, LON, a_report, photo, post_report

# Statements of one report with one photo, by back end. PostgreSQL adds the idempotency claim's savepoint and
# lock_timeout (5 statements instead of 1), the event-order lock and pg_notify for the live stream.
BUDGET = {"spatialite": 14, "postgis": 21}
# Outside every grid and with no district loaded (a city not yet on the map, as in bench_ingest), locating
# the point costs two statements (grid, then whether any district exists) instead of one.
BUDGET_NO_CITY = {"spatialite": 15, "postgis": 22}


@pytest.fixture
def locate_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, float]]:
    """Every call of ``components.service.locate_point`` (the real one runs)."""
    calls: list[tuple[float, float]] = []
    real = components_service.locate_point

    def spy(session: Any, *, lon: float, lat: float) -> components_service.Located:
        calls.append((lon, lat))
        return real(session, lon=lon, lat=lat)

    monkeypatch.setattr(components_service, "locate_point", spy)
    return calls


@pytest.fixture
def driver_sql(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The SQL of every :meth:`gridcity.spatial.Statement.run` (the real one runs)."""
    ran: list[str] = []
    real = spatial.Statement.run

    def spy(self: spatial.Statement, session: Any) -> list[tuple[Any, ...]]:
        ran.append(" ".join(self.sql.split()))
        return real(self, session)

    monkeypatch.setattr(spatial.Statement, "run", spy)
    return ran


def _check(seen: list[str], budget: int) -> None:
    assert len(seen) <= budget, f"{len(seen)} statements for a report (budget {budget}):\n  " + "\n  ".join(seen)


@pytest.mark.parametrize("in_city", [True, False], ids=["in-a-grid", "no-city-loaded"])
def test_a_report_locates_its_point_once_and_stays_within_its_statement_budget(
    app: Any, client: Any, orgdata: Any, backend: str, request: pytest.FixtureRequest, in_city: bool
) -> None:
    if in_city:
        request.getfixturevalue("city")
    post_report(client, orgdata.headers("inspector"), "warm-up", a_report(), photos=[photo(1)])
    calls = request.getfixturevalue("locate_calls")
    ran = request.getfixturevalue("driver_sql")
    with counting(app.state.engine) as seen:
        r = post_report(client, orgdata.headers("inspector"), "k-count", a_report(), photos=[photo(2)])
    assert r.status_code == 201, r.text
    assert r.json()["grid_code"] if in_city else "grid_code" not in r.json()
    assert calls == [(LON + CELL / 2, LAT + CELL / 2)], "the report's point was located more than once"
    grid_reads = [s for s in (*seen, *ran) if s.startswith("SELECT code FROM grid") or "FROM grid" in s[:40]]
    assert len(grid_reads) == 1, (seen, ran)
    assert r.json()["photos"][0]["flags"] == ["photo.no_exif_gps", "photo.no_exif_time"]
    assert not [s for s in seen if s.startswith("UPDATE attachment")], "flags written after the insert"
    _check([*seen, *(r for r in ran if r in grid_reads)], (BUDGET if in_city else BUDGET_NO_CITY)[backend])
