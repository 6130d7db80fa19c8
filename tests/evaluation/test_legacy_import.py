"""Legacy history import: round trip (identical facts and rankings), refusals leave nothing, idempotence."""

from __future__ import annotations

import json
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from geoalchemy2.shape import from_shape
from shapely.geometry import box
from sqlalchemy.orm import Session

from casework import legacy_import
from casework.models import Case, CaseEvent, CaseLegacyKey
from casework.rules import load_rules
from components.models import Grid
from evaluation import facts, service
from evaluation.models import StageFact
from gridcity.root.metadata import all_metadata
from tests.conftest import Org
from tests.evaluation.conftest import GRID, Driver, local
from tests.evaluation.test_evaluation_service import scenario

FACT_COLUMNS = [c.name for c in StageFact.__table__.c if c.name not in ("id", "case_id")]


def _grid(session: Session) -> None:
    # The cases of the scenario lie at (107.1448, 34.3693): one unit grid around it, so the import locates them.
    session.add(
        Grid(
            code=GRID,
            community_code=GRID[:12],
            area_m2=1e4,
            geom=from_shape(box(107.14, 34.36, 107.15, 34.38), srid=4326),
        )
    )
    session.flush()


def _delete_cases(session: Session) -> None:
    doomed = {
        "case",
        "case_event",
        "event_attachment",
        "case_counter",
        "eval_rollup",
        "eval_rollup_dirty",
        "eval_rollup_state",
    }
    tables = all_metadata().sorted_tables
    changed = True
    while changed:
        changed = False
        for t in tables:
            if t.name not in doomed and any(fk.column.table.name in doomed for fk in t.foreign_keys):
                doomed.add(t.name)
                changed = True
    for t in reversed(tables):
        if t.name in doomed:
            session.execute(t.delete())
    session.flush()


def _facts_by_number(session: Session) -> dict[tuple[str, str, int], tuple[Any, ...]]:
    rows = session.execute(sa.select(Case.number, StageFact).join(Case, Case.id == StageFact.case_id)).all()
    return {
        (n, f.stage, f.run_no): tuple(getattr(f, c) for c in FACT_COLUMNS if c != "department_id") + (f.department_id,)
        for n, f in rows
    }


def _rankings(session: Session) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    for st in service.SUBJECT_TYPES:
        r = service.compute(session, period="2026-10", subject_type=st, source="raw")
        out[st] = [(x.subject_id, x.rank, str(x.score.composite), sorted(x.counts.items())) for x in r.rows]
    return out


def _import(session: Session, lines: list[str], *, in_child: bool = False) -> legacy_import.ImportResult:
    rules = load_rules()
    return legacy_import.import_records(
        session,
        legacy_import.read_lines(lines),
        rules=rules,
        after=facts.ImportFacts(rules=rules),
        in_child=in_child,  # by default in this process (test_demo_history.py imports in a child process)
    )


def test_export_then_import_gives_identical_facts_and_rankings(session: Session, driver: Driver, orgdata: Org) -> None:
    _grid(session)
    scenario(driver)
    before_facts, before_rank = _facts_by_number(session), _rankings(session)
    lines = [json.dumps(r, ensure_ascii=False) for r in legacy_import.export_records(session)]
    assert len(lines) == session.scalar(sa.select(sa.func.count()).select_from(CaseEvent))
    _delete_cases(session)
    assert session.scalar(sa.select(sa.func.count()).select_from(Case)) == 0

    result = _import(session, lines)
    assert (result.cases, result.events, result.skipped_cases) == (4, len(lines), 0)
    assert _facts_by_number(session) == before_facts
    assert _rankings(session) == before_rank
    # The same file again: every key is known, nothing changes.
    again = _import(session, lines)
    assert (again.cases, again.skipped_cases) == (0, 4)
    assert _facts_by_number(session) == before_facts


def _line(key: str, action: str, actor: str | None, day: int, hh: int, mm: int = 0, **kw: Any) -> str:
    at = local(day, hh, mm).astimezone(ZoneInfo("Asia/Shanghai")).isoformat()
    return json.dumps({"case": key, "action": action, "actor": actor, "at": at, **kw}, ensure_ascii=False)


GOOD = [
    _line("K1", "report", "inspector", 12, 9, **{"class": "C0101", "location": {"lon": 107.1448, "lat": 34.3693}}),
    _line("K1", "file", "shiftlead", 12, 9, 30),
    _line("K1", "dispatch", "dispatcher", 12, 10, department="SZ"),
    _line("K1", "accept", "water", 12, 10, 30),
    _line("K1", "feedback", "water", 13, 9, evidence=["old-system:photo/1.jpg"]),
]


@pytest.mark.parametrize("in_child", [False, True], ids=["here", "in_child"])
def test_a_file_with_errors_is_refused_whole_with_line_numbers(
    session: Session, driver: Driver, in_child: bool
) -> None:
    bad = [
        *GOOD,  # lines 1-5: a good case
        _line(
            "K2", "report", "nobody", 12, 9, **{"class": "C0101", "location": {"lon": 107.1448, "lat": 34.3693}}
        ),  # 6
        _line(
            "K3", "report", "inspector", 12, 9, **{"class": "C0101", "location": {"lon": 107.1448, "lat": 34.3693}}
        ),  # 7
        _line("K3", "close", "shiftlead", 12, 10),  # 8: reported → close
        _line(
            "K4", "report", "inspector", 12, 9, **{"class": "C0101", "location": {"lon": 107.1448, "lat": 34.3693}}
        ),  # 9
        _line("K4", "file", "shiftlead", 12, 8),  # 10: before the report
        "{not json",  # 11
        json.dumps({"case": "K5", "action": "report", "actor": "inspector", "at": "2026-10-12T09:00:00"}),  # 12
        json.dumps({"case": "K6", "action": "nap", "actor": "inspector", "at": "2026-10-12T09:00:00+08:00"}),  # 13
        json.dumps({"case": "K6", "action": ["file"], "actor": "inspector", "at": "2026-10-12T09:00:00+08:00"}),
        json.dumps({"case": "K6", "action": "file", "colour": "red", "at": "2026-10-12T09:00:00+08:00"}),  # 15
        json.dumps({"case": " ", "action": "file", "at": "2026-10-12T09:00:00+08:00"}),  # 16
        "[1, 2]",  # 17
    ]
    with pytest.raises(legacy_import.ImportRefused) as exc:
        _import(session, bad, in_child=in_child)
    got = [(e["line"], e["type"]) for e in exc.value.errors]
    assert got == [
        (6, "import.unknown_actor"),
        (8, "case.invalid_transition"),
        (10, "import.time_backwards"),
        (11, "import.bad_json"),
        (12, "import.time_without_zone"),
        (13, "import.unknown_action"),
        (14, "import.unknown_action"),
        (15, "import.unknown_field"),
        (16, "import.bad_case_key"),
        (17, "import.bad_json"),
    ]
    assert exc.value.code == "import.refused"
    # Nothing of the good case either.
    for model in (Case, CaseEvent, CaseLegacyKey, StageFact):
        assert session.scalar(sa.select(sa.func.count()).select_from(model)) == 0


def test_an_imported_case_is_derived_as_if_live(session: Session, driver: Driver, orgdata: Org) -> None:
    result = _import(session, GOOD)
    assert result.cases == 1
    case = session.scalars(sa.select(Case)).one()
    assert (case.status.value, case.department_id, case.version) == ("feedback", orgdata.depts["SZ"], 5)
    # the bulk write stores the point as geometry too (the map's case tiles read it), not only lon/lat
    assert session.scalar(sa.select(sa.func.ST_AsText(Case.geom))) == "POINT(107.1448 34.3693)"
    assert session.scalar(sa.select(CaseLegacyKey.case_id).where(CaseLegacyKey.key == "K1")) == case.id
    evs = session.scalars(sa.select(CaseEvent).order_by(CaseEvent.seq)).all()
    assert [e.at for e in evs][0] == local(12, 9) and evs[-1].data["legacy_evidence"] == ["old-system:photo/1.jpg"]
    handle = session.scalars(sa.select(StageFact).where(StageFact.stage == "handle")).one()
    assert handle.on_time and handle.completed_at == local(13, 9)


def test_a_parsed_line_holds_one_copy_of_what_repeats() -> None:
    """Every line is held until its case is replayed (a ten-year file: millions of them), so a parsed line keeps
    no second copy of what it parsed (case, action, time) and shares one string per distinct key, login or code
    with every other line; the fields the replay reads are unchanged."""
    texts = [
        json.dumps(
            {
                "case": "K-1",
                "action": "report",
                "actor": "jdy01",
                "at": "2024-05-06T09:12:00+08:00",
                "class": "C0101",
                "location": {"lon": 107.1, "lat": 34.3},
                "note": "井盖",
            }
        ),
        json.dumps(
            {
                "case": "K-1",
                "action": "dispatch",
                "actor": "dispatcher",
                "at": "2024-05-06T09:41:00+08:00",
                "department": "SZ",
            }
        ),
        json.dumps(
            {
                "case": "K-2",
                "action": "report",
                "actor": "jdy01",
                "at": "2024-05-06T10:00:00+08:00",
                "class": "C0101",
                "location": {"lon": 107.2, "lat": 34.3},
            }
        ),
        json.dumps({"case": "K-1", "action": "accept", "actor": "water", "at": "2024-05-06T10:02:00+08:00"}),
    ]
    errors: list[dict[str, Any]] = []
    lines = legacy_import._parse(legacy_import.read_lines(texts), errors)
    assert errors == []
    assert [ln.key for ln in lines] == ["K-1", "K-1", "K-2", "K-1"]
    assert lines[0].key is lines[1].key is lines[3].key  # one string per case key
    assert lines[0].raw["actor"] is lines[2].raw["actor"]  # one string per login
    assert lines[0].raw["class"] is lines[2].raw["class"]
    assert all(not ({"case", "action", "at"} & set(ln.raw)) for ln in lines)  # parsed into the line itself
    assert lines[0].raw == {"actor": "jdy01", "class": "C0101", "location": {"lon": 107.1, "lat": 34.3}, "note": "井盖"}
    assert lines[1].raw == {"actor": "dispatcher", "department": "SZ"}
    assert lines[1].at.isoformat() == "2024-05-06T01:41:00+00:00"
    assert not hasattr(lines[0], "__dict__")  # slots: no per-line attribute dict
