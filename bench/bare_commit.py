"""A bare FastAPI endpoint whose whole work is G-P1's limit: one ``INSERT`` committed per request.

No authentication, no case, no subscribers: FastAPI parses the JSON body and a sync endpoint (threadpool, as
the app's are) inserts one ``bench_event`` row in its own transaction on an engine made by the app's own
``gridcity.database.make_engine`` from ``GRIDCITY_DATABASE_URL``. Served by the same uvicorn command as the app,
its rate against the bare insert is the most that any FastAPI app which stores each transition can reach on
this stack (:mod:`bench.bench_pipeline`). The table ``bench_event`` must exist.

    GRIDCITY_DATABASE_URL=sqlite:///x.sqlite .venv/bin/python -m uvicorn bench.bare_commit:app --port 8003
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
from typing import Any

import sqlalchemy as sa
from fastapi import Body, FastAPI

from gridcity.database import make_engine

INSERT_SQL = (
    "INSERT INTO bench_event (case_id, seq, action, from_status, to_status, actor_id, actor_role, "
    "department_id, at, note, data) VALUES (:case_id, :seq, :action, :from_status, :to_status, "
    ":actor_id, :actor_role, :department_id, :at, :note, :data)"
)
"""The limit's insert (:mod:`bench.bench_pipeline` times it bare, this app behind FastAPI)."""


def event_row(case_id: int, seq: int, action: str, data: str) -> dict[str, Any]:
    """One ``bench_event`` row of the shape of a case event."""
    return {
        "case_id": case_id,
        "seq": seq,
        "action": action,
        "from_status": "reported",
        "to_status": "filed",
        "actor_id": None,
        "actor_role": "shift_leader",
        "department_id": None,
        "at": dt.datetime.now(dt.UTC).replace(tzinfo=None),
        "note": None,
        "data": data,
    }


app = FastAPI()
_INSERT = sa.text(INSERT_SQL)


@functools.cache
def _engine() -> sa.Engine:
    return make_engine(os.environ["GRIDCITY_DATABASE_URL"])


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/api/v1/cases/{case_id}/actions")
def act(case_id: int, body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008 (FastAPI's idiom)
    """Store the action as one row, committed; answer with what was stored."""
    seq = int(str(body.get("version", 0)))
    row = event_row(case_id, seq, str(body.get("action", "")), json.dumps(body))
    with _engine().begin() as conn:
        conn.execute(_INSERT, row)
    return {"id": case_id, "action": row["action"], "version": seq + 1}
