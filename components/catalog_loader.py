"""Loading the class catalog: the shipped CSV files (``components/data``) plus an optional per-city override
file, each row's cells checked by a pydantic model (:class:`ClassRow`, see ``components/data/README.md``) and
the rules between rows and files by hand; failures raise ``class.invalid_data`` naming the file, line and
column.
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from importlib import resources
from typing import Annotated, Final

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationError, ValidationInfo
from pydantic_core import PydanticCustomError

from components.catalog import ClassCatalog, ClassInfo
from components.codes import (
    CODE_LENGTH,
    CONFIDENCE_MARKERS,
    KIND_PREFIX,
    MAPPING_BASES,
    OWNER_KINDS,
    ClassKind,
    Generation,
    Geometry,
    class_code_problem,
    is_digits,
)
from gridcity.errors import InvalidInput

Loc = Sequence[str | int]


# ---- CSV loading ----------------------------------------------------------------------------------------

_REQUIRED_COLUMNS: Final = (
    "kind",
    "code",
    "major_code",
    "major_name_zh",
    "name_zh",
    "name_en",
    "owner_kind",
    "geometry",
    "auto_dispatch",
    "enabled",
)
_OPTIONAL_COLUMNS: Final = ("confidence", "aliases_zh", "cjt214_code", "mapping_basis")
_KNOWN_COLUMNS: Final = frozenset(_REQUIRED_COLUMNS + _OPTIONAL_COLUMNS)
_CLEARABLE: Final = frozenset({"name_en", "confidence", "aliases_zh", "cjt214_code", "mapping_basis"})
_CLEAR: Final = "-"
"""In an override row, this cell value empties an optional column (an empty cell keeps the base value)."""
_ALIAS_SEPARATOR: Final = "|"


class _DataError(Exception):
    def __init__(self, message: str, column: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.column = column


def _invalid(source: str, line: int, message: str, column: str | None = None) -> InvalidInput:
    where = f"{source} line {line}" + (f", column {column}" if column else "")
    extra: dict[str, str | int] = {"file": source, "line": line}
    if column:
        extra["column"] = column
    return InvalidInput(f"{where}: {message}", code="class.invalid_data", loc=[source, line], extra=extra)


def _read_rows(text: str, source: str, *, override: bool) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(line number, {column: stripped cell})`` for each data row; ``#`` lines are comments."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    header: list[str] | None = None
    line = 0
    try:
        for row in reader:
            start, line = line + 1, reader.line_num
            cells = [c.strip() for c in row]
            if not any(cells) or cells[0].startswith("#"):
                continue
            if header is None:
                header = cells
                unknown = [c for c in header if c not in _KNOWN_COLUMNS]
                if unknown:
                    raise _invalid(source, start, f"unknown column(s) {', '.join(map(repr, unknown))}")
                if len(set(header)) != len(header):
                    raise _invalid(source, start, "a column is named twice")
                required = ("kind", "code") if override else _REQUIRED_COLUMNS
                missing = [c for c in required if c not in header]
                if missing:
                    raise _invalid(source, start, f"missing column(s) {', '.join(missing)}")
                continue
            if len(cells) != len(header):
                raise _invalid(source, start, f"expected {len(header)} cells, found {len(cells)}")
            yield start, dict(zip(header, cells, strict=True))
    except csv.Error as exc:
        raise _invalid(source, line + 1, f"unreadable CSV ({exc})") from None
    if header is None:
        raise _invalid(source, 1, "no header row")


def _cell_rule(value: str, info: ValidationInfo) -> str:
    """Check one cell (empty: keep the base value; ``-``: clear an optional column)."""
    column = info.field_name or ""
    if value == "":
        return value
    if value == _CLEAR:
        if column not in _CLEARABLE:
            raise PydanticCustomError("class_cell", "{column} cannot be cleared", {"column": column})
        return value
    problem: str | None = None
    if column in ("auto_dispatch", "enabled") and value not in ("0", "1"):
        problem = f"must be 0 or 1, not {value!r}"
    elif column == "owner_kind" and value not in OWNER_KINDS:
        problem = f"unknown owner_kind {value!r} (see OWNER_KINDS)"
    elif column == "geometry" and value not in {g.value for g in Geometry}:
        problem = f"geometry must be point, line or polygon, not {value!r}"
    elif column == "confidence" and value not in CONFIDENCE_MARKERS:
        problem = f"confidence must be C, P or U, not {value!r}"
    elif column == "mapping_basis" and value not in MAPPING_BASES:
        problem = f"unknown mapping_basis {value!r}"
    elif column == "cjt214_code" and (not is_digits(value, 4) or class_code_problem(value)):
        problem = f"cjt214_code must be a 4-digit CJ/T 214 class code, not {value!r}"
    if problem:
        raise PydanticCustomError("class_cell", problem)
    return value


def _kind(value: str) -> ClassKind:
    try:
        return ClassKind(value)
    except ValueError:
        raise PydanticCustomError(
            "class_kind", "kind must be component or event, not {value}", {"value": repr(value)}
        ) from None


def _code(value: str) -> str:
    problem = class_code_problem(value)
    if problem:
        raise PydanticCustomError(
            "class_code", "bad class code {value}: {problem}", {"value": repr(value), "problem": problem}
        )
    return value


def _major_code(value: str, info: ValidationInfo) -> str:
    code = info.data.get("code")
    if value and code is not None and value != code[:2]:
        raise PydanticCustomError(
            "class_major", "major_code {value} does not match code {code}", {"value": repr(value), "code": code}
        )
    return value


Cell = Annotated[str, AfterValidator(_cell_rule)]


class ClassRow(BaseModel):
    """One data row of a class CSV (cells stripped). Every column but ``kind`` and ``code`` may be absent
    (override files) or empty (keep the base value); ``-`` clears an optional column."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Annotated[ClassKind, BeforeValidator(_kind)]
    code: Annotated[str, AfterValidator(_code)]
    major_code: Annotated[str, AfterValidator(_major_code)] = ""
    major_name_zh: Cell = ""
    name_zh: Cell = ""
    name_en: Cell = ""
    owner_kind: Cell = ""
    geometry: Cell = ""
    auto_dispatch: Cell = ""
    enabled: Cell = ""
    confidence: Cell = ""
    aliases_zh: Cell = ""
    cjt214_code: Cell = ""
    mapping_basis: Cell = ""


def _row_key(cells: Mapping[str, str]) -> tuple[ClassKind, str]:
    """Check every cell of a row (:class:`ClassRow`); the row's class key."""
    try:
        row = ClassRow.model_validate(cells)
    except ValidationError as exc:
        err = exc.errors()[0]
        column = str(err["loc"][0]) if err["loc"] else None
        raise _DataError(err["msg"], column) from None
    return row.kind, row.code


def _apply(cells: Mapping[str, str], base: ClassInfo) -> ClassInfo:
    """Return ``base`` with every non-empty cell of ``cells`` (checked by :func:`_row_key`) applied (``-``
    clears optional columns)."""
    changes: dict[str, object] = {}
    for column, value in cells.items():
        if column in ("kind", "code", "major_code") or value == "":
            continue
        if value == _CLEAR:
            changes[column] = {"aliases_zh": (), "cjt214_code": None}.get(column, "")
        elif column in ("auto_dispatch", "enabled"):
            changes[column] = value == "1"
        elif column == "geometry":
            changes[column] = Geometry(value)
        elif column == "aliases_zh":
            changes[column] = tuple(a.strip() for a in value.split(_ALIAS_SEPARATOR) if a.strip())
        else:
            changes[column] = value
    return replace(base, **changes)  # type: ignore[arg-type]


def _new_class(cells: Mapping[str, str], kind: ClassKind, code: str, *, local: bool) -> ClassInfo:
    """Build a class from a full row (every column that has no default must be non-empty)."""
    for column in ("major_name_zh", "name_zh", "owner_kind", "geometry"):
        if not cells.get(column) or cells[column] == _CLEAR:
            raise _DataError(f"{column} is required to add the new class {KIND_PREFIX[kind]}{code}", column)
    blank = ClassInfo(
        key=KIND_PREFIX[kind] + code,
        kind=kind,
        generation=CODE_LENGTH[len(code)],
        code=code,
        major_code=code[:2],
        major_name_zh="",
        name_zh="",
        name_en="",
        owner_kind="",
        geometry=Geometry.POINT,
        auto_dispatch=False,
        enabled=True,
        confidence="",
        local=local,
    )
    return _apply({k: v for k, v in cells.items() if v != _CLEAR}, blank)


def load_catalog(
    base_csv_texts: Sequence[str],
    override_csv_text: str | None = None,
    *,
    base_names: Sequence[str] | None = None,
    override_name: str = "override",
) -> ClassCatalog:
    """Load and validate class data: shipped base files, then an optional per-city override file.

    Base files need every column of ``_REQUIRED_COLUMNS`` (optional: ``confidence``, ``aliases_zh``,
    ``cjt214_code``, ``mapping_basis``). A class (kind + code) may appear once over all base files.

    The override file needs ``kind`` and ``code`` plus any other columns. A row naming an existing class
    changes it: each non-empty cell replaces the base value (``-`` clears an optional column), so under
    the header ``kind,code,owner_kind,enabled`` the row ``event,0102,,0`` disables E0102 and
    ``component,0101,water_affairs,`` reassigns C0101's owner kind. A row naming a new class adds a local
    class and must give ``name_zh``, ``owner_kind``, ``geometry`` and ``major_name_zh`` (the last may be
    omitted when the major already exists).

    Checked for every row: kind, code (4/5 digits, non-zero major and minor), major_code = code[:2],
    owner_kind in :data:`OWNER_KINDS`, geometry, 0/1 flags, confidence, mapping_basis, one major name per
    (kind, generation, major); ``cjt214_code`` only on 5-digit classes, naming an existing CJ/T 214 class
    of the same kind, at most one GB/T 47678 class per CJ/T 214 class. Blank lines and lines starting with
    ``#`` are skipped; a UTF-8 BOM is ignored.

    Args:
        base_csv_texts: The contents of the base CSV files.
        override_csv_text: The contents of the city's override CSV file, if any.
        base_names: Names of the base files for error messages (default ``base1``, ``base2``, ...).
        override_name: Name of the override file for error messages.

    Returns:
        The merged catalog.

    Raises:
        InvalidInput: ``class.invalid_data``; the message, ``loc`` (``[file, line]``) and ``ctx`` name the
            file and line (and the column when known).
    """
    names = list(base_names) if base_names is not None else [f"base{i + 1}" for i in range(len(base_csv_texts))]
    if len(names) != len(base_csv_texts):
        raise ValueError("base_names must name every base text")
    classes: dict[str, ClassInfo] = {}
    origin: dict[str, tuple[str, int]] = {}

    sources: list[tuple[str, str, bool]] = [(n, t, False) for n, t in zip(names, base_csv_texts, strict=True)]
    if override_csv_text is not None:
        sources.append((override_name, override_csv_text, True))
    rank: dict[str, tuple[int, int]] = {}
    for source_index, (source, text, is_override) in enumerate(sources):
        seen_here: set[str] = set()
        for line, cells in _read_rows(text, source, override=is_override):
            try:
                kind, code = _row_key(cells)
                key = KIND_PREFIX[kind] + code
                if key in seen_here:
                    raise _DataError(f"{key} appears twice in this file (first at line {origin[key][1]})")
                existing = classes.get(key)
                if existing is not None and not is_override:
                    raise _DataError(f"{key} is already defined in {origin[key][0]} line {origin[key][1]}")
                if existing is not None:
                    info = _apply(cells, existing)
                else:
                    if is_override and not cells.get("major_name_zh"):
                        # we let a local class inherit the name of an existing major
                        same_major = next(
                            (
                                c
                                for c in classes.values()
                                if c.kind is kind and c.major_code == code[:2] and len(c.code) == len(code)
                            ),
                            None,
                        )
                        if same_major is not None:
                            cells = {**cells, "major_name_zh": same_major.major_name_zh}
                    info = _new_class(cells, kind, code, local=is_override)
                if is_override and not cells.get("mapping_basis"):
                    if cells.get("cjt214_code") not in (None, "", _CLEAR):
                        info = replace(info, mapping_basis="city")
                    elif info.cjt214_code is None:
                        info = replace(info, mapping_basis="")
                _check_row(info)
            except _DataError as exc:
                raise _invalid(source, line, exc.message, exc.column) from None
            seen_here.add(key)
            classes[key] = info
            origin[key] = (source, line)
            rank[key] = (source_index, line)

    # we check cross-row rules in file order, so that a conflict is reported at the later (override) row
    _check_catalog([classes[k] for k in sorted(classes, key=rank.__getitem__)], origin)
    return ClassCatalog(list(classes.values()))


def _check_row(info: ClassInfo) -> None:
    if info.cjt214_code is not None and info.generation is not Generation.GBT47678:
        raise _DataError("cjt214_code is only for 5-digit (GB/T 47678) classes", "cjt214_code")
    if info.mapping_basis and info.cjt214_code is None:
        raise _DataError("mapping_basis without cjt214_code", "mapping_basis")


def _check_catalog(classes: Sequence[ClassInfo], origin: Mapping[str, tuple[str, int]]) -> None:
    """Cross-row rules, reported at the line that broke them."""
    keys = {c.key for c in classes}
    major_names: dict[tuple[ClassKind, Generation, str], tuple[str, str]] = {}
    mapped_from: dict[str, str] = {}
    for info in classes:
        key = info.key
        source, line = origin[key]
        group = (info.kind, info.generation, info.major_code)
        if group in major_names and major_names[group][0] != info.major_name_zh:
            other_name, other_key = major_names[group]
            raise _invalid(
                source,
                line,
                f"major {info.major_code} is named {info.major_name_zh!r} here but {other_name!r} for {other_key}",
                "major_name_zh",
            )
        major_names.setdefault(group, (info.major_name_zh, key))
        if info.cjt214_code is not None:
            old_key = KIND_PREFIX[info.kind] + info.cjt214_code
            if old_key not in keys:
                raise _invalid(source, line, f"cjt214_code {info.cjt214_code}: no class {old_key}", "cjt214_code")
            if old_key in mapped_from:
                raise _invalid(source, line, f"{old_key} is already mapped to {mapped_from[old_key]}", "cjt214_code")
            mapped_from[old_key] = key


# ---- shipped data ---------------------------------------------------------------------------------------

SHIPPED_FILES: Final = ("classes_cjt214.csv", "classes_gbt47678.csv")


@functools.lru_cache(maxsize=1)
def shipped_csv_texts() -> tuple[str, ...]:
    """Return the texts of the shipped class files (``components/data``) in :data:`SHIPPED_FILES` order."""
    folder = resources.files("components").joinpath("data")
    return tuple(folder.joinpath(name).read_text(encoding="utf-8") for name in SHIPPED_FILES)


@functools.lru_cache(maxsize=1)
def default_catalog() -> ClassCatalog:
    """Return the catalog of the shipped CJ/T 214 and GB/T 47678 classes, without city overrides (cached)."""
    return load_catalog(shipped_csv_texts(), base_names=SHIPPED_FILES)


def city_catalog(override_csv_text: str, *, override_name: str = "override") -> ClassCatalog:
    """Load the shipped classes with one city's override file applied (not cached).

    Raises:
        InvalidInput: ``class.invalid_data`` naming the override file's line.
    """
    return load_catalog(shipped_csv_texts(), override_csv_text, base_names=SHIPPED_FILES, override_name=override_name)
