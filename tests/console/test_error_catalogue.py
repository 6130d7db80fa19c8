"""The codes the server can emit and the console's catalogue (``gridcity/static/errors.json``) are one list.

The codes are found by scanning the source (``code="…"``, ``code=CONSTANT`` with the constant's dotted
value, ``default_code = "…"``, photo flags, load-report errors and warnings, the HTTP fallbacks of the app)
and by listing every pydantic validation error type (FastAPI passes them through as ``type``). Both ways: a
new code without a catalogue entry (Chinese and English) fails, and so does an entry no code of the server
uses any more.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import get_args

from pydantic_core.core_schema import ErrorType

from casework.lifecycle import Scope

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = ROOT / "gridcity" / "static" / "errors.json"
PACKAGES = ("gridcity", "components", "casework", "dispatch", "evaluation", "mobile_api", "gis_data")
CODE = r"([a-z][a-z0-9_]*(?:\.[a-z0-9_]+)*)"
PATTERNS = [
    re.compile(r"\bcode\s*=\s*\"" + CODE + r"\""),
    re.compile(r"\bdefault_code\b[^=\n]*=\s*\"" + CODE + r"\""),
    re.compile(r"\bFlag\(\s*\"" + CODE + r"\""),
    re.compile(r"\.(?:error|warn)\(\s*\"" + CODE + r"\""),
    re.compile(r"problems\.append\(\(\s*\"" + CODE + r"\""),
    re.compile(r"RawRow\([^\n]*\[\(\s*\"" + CODE + r"\""),
    re.compile(r"\"code\":\s*\"([a-z][a-z0-9_]*\.[a-z0-9_.]+)\""),  # dotted only (not Open311 attributes)
    re.compile(r"\b[45]\d\d:\s*\"" + CODE + r"\""),  # the app's HTTP fallbacks
    re.compile(r"_error\(\s*\d+,\s*\"" + CODE + r"\""),
]
FSTRING = re.compile(r"\bcode\s*=\s*f\"([a-z_.]+)\{")
CONSTANT_USE = re.compile(r"\bcode\s*=\s*([A-Z][A-Z0-9_]*)\b")
CONSTANT_DEF = re.compile(r"^([A-Z][A-Z0-9_]*)\s*(?::[^=\n]*)?=\s*\"" + CODE + r"\"", re.M)


def catalogue() -> dict[str, dict[str, str]]:
    data: dict[str, dict[str, str]] = json.loads(CATALOGUE.read_text(encoding="utf-8"))
    return data


def sources() -> list[Path]:
    return [p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))]


def raised_codes() -> dict[str, str]:
    found: dict[str, str] = {}
    used_constants: set[str] = set()
    constants: dict[str, tuple[str, str]] = {}
    for path in sources():
        text = path.read_text(encoding="utf-8")
        for pat in PATTERNS:
            for m in pat.finditer(text):
                found.setdefault(m.group(1), f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}")
        used_constants.update(CONSTANT_USE.findall(text))
        for m in CONSTANT_DEF.finditer(text):
            constants[m.group(1)] = (m.group(2), f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}")
    for name in used_constants & constants.keys():  # e.g. code=INVALID_SET with INVALID_SET = "evaluation.…"
        found.setdefault(*constants[name])
    return found


def f_string_prefixes() -> set[str]:
    return {m.group(1) for p in sources() for m in FSTRING.finditer(p.read_text(encoding="utf-8"))}


def test_the_scan_finds_the_codes_we_know() -> None:
    codes = raised_codes()
    for known in (
        "case.invalid_transition",
        "auth.user_inactive",
        "photo.far_from_claim",
        "grid.overlap",
        "gis.bad_feature",
        "http.not_found",
        "internal",
        "address.empty_query",
        "ws.bad_message",
        "evaluation.invalid_indicator_set",
    ):
        assert known in codes
    assert len(codes) > 140


def test_every_code_the_server_raises_is_in_the_catalogue() -> None:
    cat = catalogue()
    missing = {c: where for c, where in raised_codes().items() if c not in cat}
    assert missing == {}


def test_every_catalogue_entry_is_a_code_the_server_emits() -> None:
    """The other way round: no entry outlives its code (a renamed or removed code must leave the catalogue)."""
    raised = raised_codes()
    validation = set(get_args(ErrorType)) | {"invalid"}
    prefixes = f_string_prefixes()
    stale = [
        c
        for c in catalogue()
        if c not in raised
        and c not in validation
        and not c.startswith("http.")
        and not any(c.startswith(p) for p in prefixes)
    ]
    assert stale == []


def test_every_validation_type_and_http_fallback_is_in_the_catalogue() -> None:
    cat = catalogue()
    assert [t for t in get_args(ErrorType) if t not in cat] == []
    assert "invalid" in cat  # a validation error without a type
    for status in (400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 429, 500, 503):
        assert f"http.{status}" in cat or status in (401, 404, 405)


def test_f_string_codes_are_in_the_catalogue() -> None:
    cat = catalogue()
    prefixes = f_string_prefixes()
    assert "case.not_" in prefixes
    for scope in Scope:
        if scope is not Scope.ANY:
            assert f"case.not_{scope.value}" in cat
    for prefix in prefixes:
        assert any(k.startswith(prefix) for k in cat), prefix


def test_every_entry_has_a_chinese_and_an_english_message() -> None:
    for code, msgs in catalogue().items():
        assert set(msgs) == {"zh", "en"}, code
        assert msgs["zh"].strip() and msgs["en"].strip(), code
        assert re.search(r"[\u4e00-\u9fff]", msgs["zh"]), code  # the Chinese message is Chinese
        assert "null" not in msgs["zh"] + msgs["en"], code
