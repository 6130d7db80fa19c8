"""Schemathesis over the whole OpenAPI document, on the configured database (issue 15, hostile input).

Every operation of ``/openapi.json`` gets generated requests, valid (positive) and invalid (negative), sent
anonymously and with the bearer tokens of several roles, through the real ASGI app on the real database. The
checks are the ones the issue names: no server error, every status code documented for the operation, the
content type one the operation documents, and the body valid against the schema documented for that status.
The number of examples is bounded (hypothesis, derandomized) so that both databases finish in minutes.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.casework.helpers import LAT, LON
from tests.conftest import Org, make_jpeg

pytestmark = pytest.mark.slow

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
ROLES = [None, "inspector", "water", "dispatcher", "admin"]
"""Anonymous, then a field inspector, a department's user, the command centre, the administrator."""
EXAMPLES = int(os.environ.get("GRIDCITY_SCHEMATHESIS_EXAMPLES", "6"))
"""Examples per operation and mode (positive, negative), each from a drawn caller: a few minutes per database."""


def _run(op: Any, mode: GenerationMode, auth: list[dict[str, str]], failures: list[str]) -> None:
    # The caller is drawn with the request, so one hypothesis run per operation and mode covers every role.
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=op.as_strategy(generation_mode=mode), who=st.sampled_from(range(len(auth))))
    def check(case: Any, who: int) -> None:
        try:
            case.call_and_validate(headers=auth[who], checks=CHECKS)
        except (AssertionError, FailureGroup) as exc:
            failures.append(f"{op.label} [{mode.value}, {ROLES[who] or 'anonymous'}]: {exc}"[:3000])

    try:
        check()
    except Unsatisfiable:
        assert mode is GenerationMode.NEGATIVE, f"{op.label}: no valid request can be generated"


def _seed(app: Any, orgdata: Org) -> None:
    """A few real objects with small ids (1, 2 ...), which generated ids often hit: a case with a photo, a
    public Open311 report, a routing rule."""
    with TestClient(app) as c:
        photo = c.post(
            "/api/v1/attachments",
            files=[("files", ("p.jpg", make_jpeg(seed=1), "image/jpeg"))],
            headers=orgdata.headers("inspector"),
        )
        assert photo.status_code == 201, photo.text
        r = c.post(
            "/api/v1/cases",
            json={
                "class_code": "C0101",
                "lon": LON,
                "lat": LAT,
                "description": "井盖破损",
                "attachment_ids": [photo.json()[0]["id"]],
            },
            headers=orgdata.headers("inspector"),
        )
        assert r.status_code == 201, r.text
        r = c.post(
            "/open311/v2/requests.json",
            data={"api_key": "demo-open311-key", "service_code": "C0102", "lat": str(LAT), "long": str(LON)},
        )
        assert r.status_code == 200, r.text


def test_every_operation_answers_within_its_documented_contract(app: Any, orgdata: Org) -> None:
    _seed(app, orgdata)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) > 40, "the whole document, not a part"
    failures: list[str] = []
    auth = [orgdata.headers(u) if u else {} for u in ROLES]
    only = os.environ.get("GRIDCITY_SCHEMATHESIS_ONLY")  # a path substring, to rerun a part while debugging
    for op in operations:
        if only and only not in op.label:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _run(op, mode, auth, failures)
    if dump := os.environ.get("GRIDCITY_SCHEMATHESIS_DUMP"):
        with open(dump, "w") as fh:
            fh.write("\n\n".join(failures))
    assert not failures, f"{len(failures)} failures:\n" + "\n\n".join(failures[:40])
