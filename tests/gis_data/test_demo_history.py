"""The simulated case history: every log replays through the lifecycle, caches agree, deterministic, idempotent."""

from __future__ import annotations

import collections
import datetime as dt
import os
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import func, select

from casework import lifecycle
from casework.lifecycle import Actor, CaseAction, CaseFacts, CaseStatus, Need
from casework.models import Case, CaseCounter, CaseEvent, EventAttachment
from casework.rules import load_rules
from components import service as components_service
from components.models import Component
from gis_data import demo_city, demo_history
from gridcity import org
from gridcity.database import make_session_factory
from gridcity.root.metadata import all_metadata
from gridcity.storage import MediaStore

SCALE = 0.05
CASES = 300
END = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)  # a fixed end of the window: the same history every run
A = CaseAction
S = CaseStatus


def _load(factory: Any, store: MediaStore, lines: list[str], seed: int = 7) -> int:
    with factory() as s, s.begin():
        return demo_history.load_history(s, cases=CASES, seed=seed, end=END, store=store, echo=lines.append)


def _fingerprint(s: Any) -> list[tuple[Any, ...]]:
    actions: dict[int, list[str]] = collections.defaultdict(list)
    for cid, action in s.execute(
        select(CaseEvent.case_id, CaseEvent.action).order_by(CaseEvent.case_id, CaseEvent.seq)
    ):
        actions[cid].append(str(action))
    return [
        (r.number, r.class_code, str(r.status), r.version, r.department_id, r.created_at, tuple(actions[r.id]))
        for r in s.execute(select(Case).order_by(Case.number)).scalars()
    ]


def _replay(s: Any) -> collections.Counter[str]:
    """Replay every case's whole log through check_transition and compare with the cached columns."""
    users = {u.id: u for u in s.scalars(select(org.User))}
    attached = set(s.scalars(select(EventAttachment.event_id)))
    events: dict[int, list[CaseEvent]] = collections.defaultdict(list)
    for ev in s.scalars(select(CaseEvent).order_by(CaseEvent.case_id, CaseEvent.seq)):
        events[ev.case_id].append(ev)
    cal = load_rules().calendar
    seen: collections.Counter[str] = collections.Counter()
    for case in s.scalars(select(Case)):
        log = events[case.id]
        assert [e.seq for e in log] == list(range(1, len(log) + 1)), case.number
        status, dept, reporter, assigned = S.NEW, None, None, None
        for e in log:
            user = users[e.actor_id]
            assert user.role == e.actor_role
            actor = Actor(user_id=user.id, role=user.role, department_id=user.department_id)
            given = {
                n
                for n, ok in (
                    (Need.NOTE, bool(e.note)),
                    (Need.DEPARTMENT, "department_id" in e.data),
                    (Need.INSPECTOR, "inspector_id" in e.data),
                    (Need.ATTACHMENT, e.id in attached),
                    (Need.EXTENSION, "extension" in e.data),
                )
                if ok
            }
            row = lifecycle.check_transition(
                actor, CaseFacts(status, dept, reporter, assigned), e.action, frozenset(given)
            )
            assert (e.from_status, e.to_status) == (status, row.target), case.number
            if status is S.NEW and user.role.value == "inspector":
                reporter = user.id
            if e.action is A.DISPATCH:
                dept = e.data["department_id"]
            elif e.action is A.APPROVE_SENDBACK:
                assert e.data["from_department_id"] == dept
                dept = None
            elif e.action in (A.SEND_VERIFY, A.SEND_CHECK):
                assigned = e.data["inspector_id"]
            assert e.department_id == dept
            status = row.target
            seen[str(e.action)] += 1
        assert log[0].at == case.created_at and log[-1].at == case.updated_at
        assert all(a.at < b.at for a, b in zip(log, log[1:], strict=False)), case.number
        assert cal.is_working_time(case.created_at)
        assert (case.status, case.version, case.department_id) == (status, len(log), dept), case.number
        assert (case.reporter_id, case.assigned_inspector_id) == (reporter, assigned), case.number
        assert case.closed_at == (log[-1].at if status is S.CLOSED else None)
        stage = lifecycle.stage_of(status)
        assert case.stage == (stage.value if stage else None), case.number
        assert (case.deadline_at is not None) == (stage is not None), case.number
        seen[f"status:{status}"] += 1
    return seen


def _delete_history(engine: sa.Engine) -> None:
    """Remove the cases and everything that hangs off them (the city, users and photos stay)."""
    doomed = {"case", "case_event", "event_attachment", "case_counter"}
    tables = all_metadata().sorted_tables
    changed = True
    while changed:
        changed = False
        for t in tables:
            if t.name not in doomed and any(fk.column.table.name in doomed for fk in t.foreign_keys):
                doomed.add(t.name)
                changed = True
    with engine.begin() as conn:
        for t in reversed(tables):
            if t.name in doomed:
                conn.execute(t.delete())


def test_history_replays_through_the_lifecycle(db: sa.Engine, tmp_path: Path) -> None:
    factory = make_session_factory(db)
    store = MediaStore(tmp_path / "media")
    lines: list[str] = []
    with factory() as s, s.begin():
        demo_city.load(s, scale=SCALE, echo=lines.append, history=False)
    assert _load(factory, store, lines) == CASES
    with factory() as s:
        seen = _replay(s)
        n = s.scalar(select(func.count()).select_from(Case))
        assert n == CASES
        # the branches all occur
        for action in (
            "public_report",
            "verify_true",
            "self_handle",
            "void",
            "check_fail",
            "request_extension",
            "approve_suspension",
            "resume",
            "approve_sendback",
            "feedback",
            "close",
        ):
            assert seen[action] > 0, action
        assert seen["status:closed"] > 0.8 * CASES
        assert (
            0
            < sum(v for k, v in seen.items() if k.startswith("status:") and k not in ("status:closed", "status:voided"))
            < 0.1 * CASES
        )
        # every feedback and self-handling carries evidence that exists
        evidence = s.scalar(
            select(func.count())
            .select_from(CaseEvent)
            .where(
                CaseEvent.action.in_([A.FEEDBACK, A.SELF_HANDLE]), ~CaseEvent.id.in_(select(EventAttachment.event_id))
            )
        )
        assert evidence == 0
        # numbers, counters, components and points
        numbers = s.scalars(select(Case.number).order_by(Case.created_at, Case.id)).all()
        years = collections.Counter(num[:4] for num in numbers)
        assert dict(s.execute(select(CaseCounter.year, CaseCounter.value)).all()) == {
            int(y): c for y, c in years.items()
        }
        by_year: dict[str, list[int]] = collections.defaultdict(list)
        for num in numbers:
            by_year[num[:4]].append(int(num[5:]))
        assert all(v == list(range(1, len(v) + 1)) for v in by_year.values())
        main = dict(s.execute(select(Component.code, Component.main_department_id)).all())
        comp_cases = (
            s.execute(select(Case).where(Case.component_id.is_not(None), Case.status == S.CLOSED).order_by(Case.id))
            .scalars()
            .all()
        )
        assert comp_cases
        for c in comp_cases[:50]:
            sent_back = s.scalar(
                select(func.count())
                .select_from(CaseEvent)
                .where(CaseEvent.case_id == c.id, CaseEvent.action == A.APPROVE_SENDBACK)
            )
            if c.department_id is not None and not sent_back:
                assert c.department_id == main[c.component_id]
        for c in s.scalars(select(Case).order_by(Case.id).limit(20)):
            assert components_service.check_point_in_city(s, lon=c.lon, lat=c.lat) == c.grid_code
        before = _fingerprint(s)
    # idempotent: a second load adds nothing
    assert _load(factory, store, lines) == 0
    assert lines[-1] == "cases exist already; no simulated history loaded"
    with factory() as s:
        assert _fingerprint(s) == before
    # deterministic: the same seed on the same city gives the same history; another seed does not
    _delete_history(db)
    assert _load(factory, store, lines) == CASES
    with factory() as s:
        assert _fingerprint(s) == before
    _delete_history(db)
    assert _load(factory, store, lines, seed=8) == CASES
    with factory() as s:
        assert _fingerprint(s) != before


def test_history_needs_a_city(db: sa.Engine, tmp_path: Path) -> None:
    factory = make_session_factory(db)
    lines: list[str] = []
    assert _load(factory, MediaStore(tmp_path / "media"), lines) == 0
    assert lines == ["no grids with inspectors; no simulated history loaded"]


def test_a_demo_history_exported_and_imported_gives_identical_facts_and_rankings(db: sa.Engine, tmp_path: Path) -> None:
    """The issue's round trip: the demo's simulated history, exported in the import format and imported into
    a database emptied of cases (same city and logins), yields the same evaluation facts and rankings."""
    import json

    from casework import legacy_import
    from evaluation import facts, service
    from evaluation.models import StageFact

    factory = make_session_factory(db)
    store = MediaStore(tmp_path / "media")
    with factory() as s, s.begin():
        demo_city.load(s, scale=SCALE, echo=lambda _m: None, history=False)
    with factory() as s, s.begin():
        assert demo_history.load_history(s, cases=120, seed=3, end=END, store=store, echo=lambda _m: None) == 120
    cols = [c.name for c in StageFact.__table__.c if c.name not in ("id", "case_id")]

    def snapshot(s: Any) -> tuple[Any, Any]:
        keys = dict(s.execute(select(legacy_import.CaseLegacyKey.case_id, legacy_import.CaseLegacyKey.key)).all())
        numbers = dict(s.execute(select(Case.id, Case.number)).all())
        fact_rows = sorted(
            (keys.get(f.case_id, numbers[f.case_id]), *(str(getattr(f, c)) for c in cols))
            for f in s.scalars(select(StageFact))
        )
        ranks = {}
        for st in ("department", "grid", "street", "inspector", "acceptor", "shift_leader", "dispatcher"):
            for period in ("2026-01", "2026-02", "2026-Q1"):
                r = service.compute(s, period=period, subject_type=st, source="raw")
                ranks[(st, period)] = [
                    (x.subject_id, x.rank, str(x.score.composite), sorted(x.counts.items())) for x in r.rows
                ]
        return fact_rows, ranks

    with factory() as s:
        before = snapshot(s)
        lines = [json.dumps(r, ensure_ascii=False) for r in legacy_import.export_records(s)]
    _delete_history(db)
    rules = load_rules()
    # A case that starts after all the others and then breaks the table (closed straight after its report):
    # it is replayed last, after every batch of the good ones has been written.
    first = json.loads(lines[0])
    last_at = max(dt.datetime.fromisoformat(json.loads(x)["at"]) for x in lines)
    bad = [
        {**first, "case": "LATE-BAD", "at": (last_at + dt.timedelta(hours=1)).isoformat()},
        {
            "case": "LATE-BAD",
            "action": "close",
            "actor": first["actor"],
            "at": (last_at + dt.timedelta(hours=2)).isoformat(),
        },
    ]
    progress: list[str] = []
    with factory() as s, s.begin():
        counters = s.execute(select(CaseCounter.year, CaseCounter.value)).all()
        with pytest.raises(legacy_import.ImportRefused) as refused:
            legacy_import.import_records(
                s,
                enumerate([*lines, *(json.dumps(b) for b in bad)], start=1),
                rules=rules,
                after=facts.ImportFacts(rules=rules),
                echo=progress.append,
                batch=25,
            )
        assert [e["line"] for e in refused.value.errors] == [len(lines) + 2]
        assert "imported 100/121 cases" in "\n".join(progress)  # four batches had been written
        # ... and the refusal took them back, within this transaction, which stays usable
        for model in (Case, CaseEvent, StageFact, legacy_import.CaseLegacyKey):
            assert s.scalar(select(func.count()).select_from(model)) == 0, model
        assert s.execute(select(CaseCounter.year, CaseCounter.value)).all() == counters

        class FailingFacts(facts.ImportFacts):
            """The facts, noting the process that made them, and failing to store the second batch."""

            def derive(self, cases: Any) -> Any:
                return os.getpid(), super().derive(cases)

            def written(self, session: Any, derived: Any) -> int:
                pid, rows = derived
                made_by.append(pid)
                if self.done:
                    raise RuntimeError("disk full")
                return super().written(session, rows)

        made_by: list[int] = []
        with pytest.raises(RuntimeError, match="disk full"):
            legacy_import.import_records(
                s, enumerate(lines, start=1), rules=rules, after=FailingFacts(rules=rules), batch=25
            )
        # 120 cases: replayed (and their facts made) in a child process while this one wrote
        assert len(made_by) == 2 and len(set(made_by)) == 1 and os.getpid() not in made_by, made_by
        for model in (Case, CaseEvent, StageFact, legacy_import.CaseLegacyKey):
            assert s.scalar(select(func.count()).select_from(model)) == 0, model

        class BrokenFacts(facts.ImportFacts):
            def derive(self, cases: Any) -> Any:
                raise ValueError("no step limits")  # in the replay's process, before anything is written

        with pytest.raises(ValueError, match="no step limits"):  # raised here as it was there
            legacy_import.import_records(
                s, enumerate(lines, start=1), rules=rules, after=BrokenFacts(rules=rules), batch=25
            )
        for model in (Case, CaseEvent, StageFact, legacy_import.CaseLegacyKey):
            assert s.scalar(select(func.count()).select_from(model)) == 0, model
        # Batches of 25 cases: five replayed in the child and written here one after the other, with the
        # same facts and rankings as the history that was exported.
        result = legacy_import.import_records(
            s, enumerate(lines, start=1), rules=rules, after=facts.ImportFacts(rules=rules), batch=25
        )
        assert result.cases == 120 and result.events == len(lines)
        assert result.write_seconds > 0 and result.after_seconds > 0
    with factory() as s:
        assert snapshot(s) == before
