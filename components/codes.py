"""Pure parsing and validation of the national codes, and the class catalog loader.

Everything here follows ``/work/shared/domain/standards.md`` sections 1–4 and imports only the standard
library and :mod:`gridcity.errors`:

* **Class keys** identify a component class or an event (matter) class everywhere in the system: a kind
  prefix (``C`` component, ``E`` event) and the class code. Two code generations coexist:

  - CJ/T 214-2007 (and GB/T 30428.2-2013): 2-digit major + 2-digit minor, e.g. ``C0101`` 上水井盖;
  - GB/T 47678.5-2026: 2-digit major + 3-digit minor, e.g. ``C01001`` 供水井盖, ``E06010`` 暴露垃圾.

* **Area codes** (GB/T 2260 county + 3-digit street + 3-digit community + 3-digit grid sequence): 6, 9, 12
  or 15 digits; the 15-digit form is the unit grid identifier (单元网格标识码).
* **Component identifiers** (部件标识码): 16 digits (6 admin + 2 + 2 + 6 sequence, CJ/T 214) or 17 digits
  (6 admin + 2 + 3 + 6 sequence, GB/T 47678).
* **Matter codes** (事项代码, GB/T 47678): 11 digits, 6 admin + 2 + 3; they name a type in a district, not an
  occurrence.
* The **class catalog** is data: shipped CSV files (``components/data``) plus an optional per-city override
  file, validated row by row (see ``components/data/README.md``).

All validation failures raise :class:`gridcity.errors.InvalidInput` (HTTP 422) with a stable dotted code:
``class.malformed``, ``class.unknown``, ``class.invalid_data``, ``area.malformed_code``,
``component.malformed_id``, ``component.id_mismatch``, ``matter.malformed_code``.
"""

from __future__ import annotations

import csv
import functools
import io
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from importlib import resources
from types import MappingProxyType
from typing import Final, NamedTuple

from gridcity.errors import InvalidInput

Loc = Sequence[str | int]
"""Where in the caller's input a value came from (copied into the error's ``loc``)."""

_DIGITS: Final = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() would accept full-width ０-９


def _is_digits(s: object, length: int | None = None) -> bool:
    return isinstance(s, str) and _DIGITS.fullmatch(s) is not None and (length is None or len(s) == length)


# --------------------------------------------------------------------------------------------------------
# Vocabularies
# --------------------------------------------------------------------------------------------------------


class ClassKind(StrEnum):
    """What a class describes: a physical component (部件) or an event / matter (事件 / 事项)."""

    COMPONENT = "component"
    EVENT = "event"


class Generation(StrEnum):
    """Which standard a class code belongs to (fixed by the minor code's length)."""

    CJT214 = "cjt214"
    """CJ/T 214-2007 and GB/T 30428.2-2013: 2-digit major + 2-digit minor."""
    GBT47678 = "gbt47678"
    """GB/T 47678.5-2026: 2-digit major + 3-digit minor."""


class Geometry(StrEnum):
    """Typical geometry of a class's features (a default for data capture, not a hard rule)."""

    POINT = "point"
    LINE = "line"
    POLYGON = "polygon"


class AreaLevel(StrEnum):
    """Level of an area code, by its length."""

    DISTRICT = "district"
    STREET = "street"
    COMMUNITY = "community"
    GRID = "grid"


KIND_PREFIX: Final[Mapping[ClassKind, str]] = MappingProxyType(
    {ClassKind.COMPONENT: "C", ClassKind.EVENT: "E"}
)
_PREFIX_KIND: Final[Mapping[str, ClassKind]] = MappingProxyType({v: k for k, v in KIND_PREFIX.items()})
_CODE_LENGTH: Final[Mapping[int, Generation]] = MappingProxyType(
    {4: Generation.CJT214, 5: Generation.GBT47678}
)
_GENERATION_ORDER: Final = {Generation.CJT214: 0, Generation.GBT47678: 1}
_KIND_ORDER: Final = {ClassKind.COMPONENT: 0, ClassKind.EVENT: 1}

OWNER_KINDS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "water_supply": "供水",
        "drainage": "排水",
        "water_affairs": "水务（河湖、防汛、中水、水井）",
        "power": "供电",
        "telecom": "通信（电信、广电、网络）",
        "gas": "燃气",
        "heating": "供热",
        "pipeline": "油气管道",
        "street_lighting": "路灯照明",
        "roads": "市政道路桥梁",
        "transport": "交通运输（公交、客运、停车）",
        "rail": "铁路与轨道交通",
        "traffic_police": "公安交管",
        "public_security": "公安",
        "fire_rescue": "消防救援",
        "landscaping": "园林绿化",
        "sanitation": "环境卫生",
        "urban_management": "城市管理综合执法",
        "housing": "住房和城乡建设",
        "environment": "生态环境",
        "market_supervision": "市场监管",
        "civil_affairs": "民政",
        "postal": "邮政快递",
        "civil_air_defence": "人民防空",
        "emergency_management": "应急管理",
        "meteorology": "气象",
        "maritime": "海事港航",
        "culture_tourism": "文化旅游（含文物、文化市场）",
        "sports": "体育",
        "health": "卫生健康",
        "subdistrict": "属地街道（乡镇）",
        "asset_owner": "权属单位（按部件登记的产权、运营单位）",
    }
)
"""The fixed ``owner_kind`` vocabulary (typical responsible department kind) with Chinese labels."""

CONFIDENCE_MARKERS: Final = frozenset({"C", "P", "U"})
"""standards.md confidence markers: confirmed, probable, unconfirmed (empty for local classes)."""

MAPPING_BASES: Final = frozenset({"same_name", "same_name_other_major", "alias", "variant", "city"})
"""Why a GB/T 47678 class carries a ``cjt214_code`` (see ``components/data/README.md``)."""

PROVINCE_PREFIXES: Final = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 "
    "50 51 52 53 54 61 62 63 64 65 71 81 82".split()
)
"""First two digits of every GB/T 2260 province-level code."""

_AREA_LEVELS: Final[Mapping[int, AreaLevel]] = MappingProxyType(
    {6: AreaLevel.DISTRICT, 9: AreaLevel.STREET, 12: AreaLevel.COMMUNITY, 15: AreaLevel.GRID}
)


# --------------------------------------------------------------------------------------------------------
# Class keys
# --------------------------------------------------------------------------------------------------------


def _class_code_problem(code: str) -> str | None:
    """Return why ``code`` is not a class code (4 or 5 ASCII digits, non-zero major and minor), or None."""
    if not _is_digits(code) or len(code) not in _CODE_LENGTH:
        return "a class code is 4 digits (CJ/T 214) or 5 digits (GB/T 47678)"
    if code[:2] == "00":
        return "major code 00 does not exist"
    if int(code[2:]) == 0:
        return f"minor code {code[2:]} does not exist"
    return None


class ClassKey(NamedTuple):
    """A parsed class key such as ``C0101`` or ``E06010``."""

    kind: ClassKind
    code: str
    generation: Generation

    @property
    def major_code(self) -> str:
        """The 2-digit major (大类) code."""
        return self.code[:2]

    @property
    def minor_code(self) -> str:
        """The 2- or 3-digit minor (小类) code."""
        return self.code[2:]

    def __str__(self) -> str:
        return KIND_PREFIX[self.kind] + self.code


def parse_class_key(s: str, *, loc: Loc = ()) -> ClassKey:
    """Parse a kind-prefixed class key.

    Args:
        s: ``C``/``E`` followed by a 4-digit (CJ/T 214) or 5-digit (GB/T 47678) class code, e.g. ``C0101``.
        loc: Where ``s`` came from, reported in the error.

    Returns:
        The ``(kind, code, generation)`` triple.

    Raises:
        InvalidInput: ``class.malformed`` when ``s`` is not such a key.
    """
    kind = _PREFIX_KIND.get(s[:1]) if isinstance(s, str) else None
    problem = "it must start with C (component) or E (event)" if kind is None else _class_code_problem(s[1:])
    if kind is None or problem is not None:
        raise InvalidInput(f"malformed class key {s!r}: {problem}", code="class.malformed", loc=loc)
    code = s[1:]
    return ClassKey(kind, code, _CODE_LENGTH[len(code)])


def make_class_key(kind: ClassKind | str, code: str, *, loc: Loc = ()) -> str:
    """Build the class key for a kind and a class code.

    Args:
        kind: ``component`` or ``event``.
        code: A 4- or 5-digit class code.
        loc: Where the values came from, reported in the error.

    Returns:
        The key, e.g. ``make_class_key("component", "0101") == "C0101"``.

    Raises:
        InvalidInput: ``class.malformed`` for an unknown kind or a malformed code.
    """
    try:
        prefix = KIND_PREFIX[ClassKind(kind)]
    except ValueError:
        raise InvalidInput(f"unknown class kind {kind!r}", code="class.malformed", loc=loc) from None
    return str(parse_class_key(prefix + code, loc=loc))


# --------------------------------------------------------------------------------------------------------
# Area (grid) codes
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AreaCode:
    """A validated area code: district (6), street (9), community (12) or unit grid (15 digits)."""

    code: str
    level: AreaLevel

    @property
    def district_code(self) -> str:
        """The 6-digit GB/T 2260 county-level code that starts every area code."""
        return self.code[:6]

    @property
    def parent(self) -> str | None:
        """The code one level up, or None for a district."""
        return self.code[:-3] if len(self.code) > 6 else None

    @property
    def sequence(self) -> int | None:
        """The last 3-digit segment (street, community or grid number), or None for a district."""
        return int(self.code[-3:]) if len(self.code) > 6 else None

    def lineage(self) -> tuple[str, ...]:
        """Return every code from the district down to this one (inclusive)."""
        return tuple(self.code[:n] for n in range(6, len(self.code) + 1, 3))

    def __str__(self) -> str:
        return self.code


def _district_problem(code: str) -> str | None:
    if code[:2] not in PROVINCE_PREFIXES:
        return f"{code[:2]} is not a GB/T 2260 province prefix"
    if code[2:6] == "0000":
        return f"{code[:6]} is a province-level code, not a county-level one"
    return None


def parse_area_code(s: str, *, loc: Loc = ()) -> AreaCode:
    """Parse and validate an area code.

    Rules: ASCII digits only; length 6 (district), 9 (street), 12 (community) or 15 (unit grid); the first
    two digits a GB/T 2260 province prefix and digits 3–6 not ``0000``; every 3-digit segment after the
    district in ``001``–``999``.

    Args:
        s: The code.
        loc: Where ``s`` came from, reported in the error.

    Returns:
        The code and its level.

    Raises:
        InvalidInput: ``area.malformed_code``.
    """
    if not _is_digits(s) or len(s) not in _AREA_LEVELS:
        problem: str | None = "an area code is 6, 9, 12 or 15 ASCII digits"
    else:
        problem = _district_problem(s)
        if problem is None:
            for start in range(6, len(s), 3):
                if s[start : start + 3] == "000":
                    level = _AREA_LEVELS[start + 3].value
                    problem = f"{level} number 000 is not allowed (001–999)"
                    break
    if problem is not None:
        raise InvalidInput(f"malformed area code {s!r}: {problem}", code="area.malformed_code", loc=loc)
    return AreaCode(s, _AREA_LEVELS[len(s)])


def parent_code(code: str, *, loc: Loc = ()) -> str | None:
    """Return the parent of an area code (grid → community → street → district → None).

    Raises:
        InvalidInput: ``area.malformed_code`` when ``code`` is not a valid area code.
    """
    return parse_area_code(code, loc=loc).parent


def child_area_code(parent: str, sequence: int, *, loc: Loc = ()) -> str:
    """Build the code of a child area: ``parent`` followed by ``sequence`` as 3 digits.

    Args:
        parent: A district, street or community code.
        sequence: 1–999.
        loc: Where the values came from, reported in the error.

    Returns:
        The child's code, e.g. ``child_area_code("110101001001", 1) == "110101001001001"``.

    Raises:
        InvalidInput: ``area.malformed_code`` for a bad parent, a grid parent or a sequence out of range.
    """
    area = parse_area_code(parent, loc=loc)
    if area.level is AreaLevel.GRID:
        raise InvalidInput(f"a unit grid ({parent}) has no children", code="area.malformed_code", loc=loc)
    if isinstance(sequence, bool) or not isinstance(sequence, int) or not 1 <= sequence <= 999:
        raise InvalidInput(
            f"area sequence must be 1–999, got {sequence!r}", code="area.malformed_code", loc=loc
        )
    return f"{parent}{sequence:03d}"


# --------------------------------------------------------------------------------------------------------
# Component identifiers and matter codes
# --------------------------------------------------------------------------------------------------------

_ID_MINOR_DIGITS: Final[Mapping[int, int]] = MappingProxyType({16: 2, 17: 3})


@dataclass(frozen=True)
class ComponentId:
    """A parsed component identifier (部件标识码)."""

    admin_code: str
    """6-digit GB/T 2260 county-level code."""
    class_key: str
    """Component class key, e.g. ``C0101``."""
    sequence: int
    """1–999999."""
    generation: Generation

    def __str__(self) -> str:
        return f"{self.admin_code}{self.class_key[1:]}{self.sequence:06d}"


def parse_component_id(s: str, *, loc: Loc = ()) -> ComponentId:
    """Parse a 16-digit (CJ/T 214) or 17-digit (GB/T 47678) component identifier.

    Args:
        s: e.g. ``3205080101000001`` = 320508 姑苏区 + 01 + 01 上水井盖 + 000001.
        loc: Where ``s`` came from, reported in the error.

    Returns:
        The admin code, component class key, sequence and generation.

    Raises:
        InvalidInput: ``component.malformed_id``.
    """
    if not _is_digits(s) or len(s) not in _ID_MINOR_DIGITS:
        problem: str | None = "a component ID is 16 (CJ/T 214) or 17 (GB/T 47678) ASCII digits"
    else:
        code = s[6:-6]
        problem = _district_problem(s[:6]) or _class_code_problem(code)
        if problem is None and int(s[-6:]) == 0:
            problem = "sequence 000000 is not allowed"
    if problem is not None:
        raise InvalidInput(f"malformed component ID {s!r}: {problem}", code="component.malformed_id", loc=loc)
    return ComponentId(s[:6], "C" + code, int(s[-6:]), _CODE_LENGTH[len(code)])


def format_component_id(*, admin_code: str, class_key: str, sequence: int, loc: Loc = ()) -> str:
    """Build a component identifier.

    Args:
        admin_code: 6-digit district code (a longer area code is cut to its district part).
        class_key: Component class key, ``C`` + 4 or 5 digits; its generation fixes the ID length.
        sequence: 1–999999.
        loc: Where the values came from, reported in the error.

    Returns:
        The 16- or 17-digit identifier.

    Raises:
        InvalidInput: ``area.malformed_code``, ``class.malformed`` or ``component.malformed_id``.
    """
    district = parse_area_code(admin_code, loc=loc).district_code
    key = parse_class_key(class_key, loc=loc)
    if key.kind is not ClassKind.COMPONENT:
        raise InvalidInput(
            f"{class_key} is an event class; component IDs need a component class",
            code="component.malformed_id",
            loc=loc,
        )
    if isinstance(sequence, bool) or not isinstance(sequence, int) or not 1 <= sequence <= 999_999:
        raise InvalidInput(
            f"component sequence must be 1–999999, got {sequence!r}", code="component.malformed_id", loc=loc
        )
    return f"{district}{key.code}{sequence:06d}"


def check_component_id(s: str, *, class_key: str, admin_code: str, loc: Loc = ()) -> ComponentId:
    """Parse a component identifier and check it agrees with the component's other data.

    Args:
        s: The identifier.
        class_key: The component's class key; must equal the ID's (same generation, no mapping applied).
        admin_code: The component's district code, or any longer area code (e.g. its unit grid); the ID's
            first 6 digits must equal its district part.
        loc: Where ``s`` came from, reported in the error.

    Returns:
        The parsed identifier.

    Raises:
        InvalidInput: ``component.malformed_id`` for a malformed ID; ``class.malformed`` or
            ``area.malformed_code`` for malformed comparison data; ``component.id_mismatch`` when they
            disagree.
    """
    parsed = parse_component_id(s, loc=loc)
    key = str(parse_class_key(class_key))
    district = parse_area_code(admin_code).district_code
    if parsed.class_key != key:
        raise InvalidInput(
            f"component ID {s} encodes class {parsed.class_key}, not {key}",
            code="component.id_mismatch",
            loc=loc,
        )
    if parsed.admin_code != district:
        raise InvalidInput(
            f"component ID {s} encodes district {parsed.admin_code}, not {district}",
            code="component.id_mismatch",
            loc=loc,
        )
    return parsed


@dataclass(frozen=True)
class MatterCode:
    """A parsed GB/T 47678 matter code (事项代码): a matter type within one district."""

    admin_code: str
    class_key: str
    """Event class key, ``E`` + 5 digits."""

    def __str__(self) -> str:
        return self.admin_code + self.class_key[1:]


def parse_matter_code(s: str, *, loc: Loc = ()) -> MatterCode:
    """Parse an 11-digit GB/T 47678 matter code (6 admin + 2 major + 3 minor).

    Raises:
        InvalidInput: ``matter.malformed_code``.
    """
    if not _is_digits(s, 11):
        problem: str | None = "a matter code is 11 ASCII digits"
    else:
        problem = _district_problem(s[:6]) or _class_code_problem(s[6:])
    if problem is not None:
        raise InvalidInput(f"malformed matter code {s!r}: {problem}", code="matter.malformed_code", loc=loc)
    return MatterCode(s[:6], "E" + s[6:])


def format_matter_code(*, admin_code: str, class_key: str, loc: Loc = ()) -> str:
    """Build an 11-digit matter code from a district (or longer area) code and a GB/T 47678 event key.

    Raises:
        InvalidInput: ``area.malformed_code``, ``class.malformed`` or ``matter.malformed_code``.
    """
    district = parse_area_code(admin_code, loc=loc).district_code
    key = parse_class_key(class_key, loc=loc)
    if key.kind is not ClassKind.EVENT or key.generation is not Generation.GBT47678:
        raise InvalidInput(
            f"matter codes need a GB/T 47678 event key (E + 5 digits), got {class_key}",
            code="matter.malformed_code",
            loc=loc,
        )
    return district + key.code


# --------------------------------------------------------------------------------------------------------
# Class catalog
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassInfo:
    """One component or event class of the catalog."""

    key: str
    kind: ClassKind
    generation: Generation
    code: str
    major_code: str
    major_name_zh: str
    name_zh: str
    name_en: str
    owner_kind: str
    geometry: Geometry
    auto_dispatch: bool
    enabled: bool
    confidence: str
    """``C``/``P``/``U`` (standards.md markers) or empty (local classes)."""
    aliases_zh: tuple[str, ...] = ()
    cjt214_code: str | None = None
    """For GB/T 47678 classes: the CJ/T 214 class code of the same kind it replaces, if known."""
    mapping_basis: str = ""
    local: bool = False
    """True for classes added by a city override (not in the shipped data)."""

    @property
    def minor_code(self) -> str:
        """The 2- or 3-digit minor code."""
        return self.code[2:]


@dataclass(frozen=True)
class MajorGroup:
    """A major class (大类): the group of classes sharing kind, generation and major code."""

    kind: ClassKind
    generation: Generation
    major_code: str
    major_name_zh: str
    class_keys: tuple[str, ...]


def _sort_key(info: ClassInfo) -> tuple[int, int, str]:
    return (_GENERATION_ORDER[info.generation], _KIND_ORDER[info.kind], info.code)


class ClassCatalog:
    """An immutable set of classes, with lookups by key, by major and across generations.

    Build it with :func:`load_catalog` (which validates) or :func:`default_catalog`.
    """

    __slots__ = ("_by_key", "_old_to_new", "_new_to_old")

    def __init__(self, classes: Sequence[ClassInfo]) -> None:
        """Index already-validated classes (use :func:`load_catalog` to build one from CSV)."""
        ordered = sorted(classes, key=_sort_key)
        self._by_key: Mapping[str, ClassInfo] = MappingProxyType({c.key: c for c in ordered})
        new_to_old: dict[str, str] = {}
        for c in ordered:
            if c.cjt214_code is not None:
                new_to_old[c.key] = KIND_PREFIX[c.kind] + c.cjt214_code
        self._new_to_old: Mapping[str, str] = MappingProxyType(new_to_old)
        self._old_to_new: Mapping[str, str] = MappingProxyType({v: k for k, v in new_to_old.items()})

    def __len__(self) -> int:
        return len(self._by_key)

    def __iter__(self) -> Iterator[ClassInfo]:
        return iter(self._by_key.values())

    def __repr__(self) -> str:
        return f"<ClassCatalog {len(self)} classes>"

    def get(self, key: str, *, include_disabled: bool = False, loc: Loc = ()) -> ClassInfo:
        """Return the class with this key.

        Args:
            key: A class key such as ``C0101`` or ``E06010``.
            include_disabled: Also return classes a city has disabled.
            loc: Where ``key`` came from, reported in the error.

        Raises:
            InvalidInput: ``class.malformed`` for a malformed key; ``class.unknown`` when the catalog has no
                such class, or it is disabled (unless ``include_disabled``).
        """
        parse_class_key(key, loc=loc)
        info = self._by_key.get(key)
        if info is None:
            raise InvalidInput(f"unknown class {key}", code="class.unknown", loc=loc)
        if not info.enabled and not include_disabled:
            raise InvalidInput(f"class {key} ({info.name_zh}) is disabled", code="class.unknown", loc=loc)
        return info

    def all(
        self,
        kind: ClassKind | str | None = None,
        *,
        enabled_only: bool = True,
        generation: Generation | str | None = None,
    ) -> list[ClassInfo]:
        """List classes ordered by generation, kind and code.

        Args:
            kind: Only this kind (``component`` / ``event``); all kinds when None.
            enabled_only: Leave out disabled classes.
            generation: Only this generation (``cjt214`` / ``gbt47678``); both when None.
        """
        k = ClassKind(kind) if kind is not None else None
        g = Generation(generation) if generation is not None else None
        return [
            c
            for c in self._by_key.values()
            if (k is None or c.kind is k)
            and (g is None or c.generation is g)
            and (c.enabled or not enabled_only)
        ]

    def majors(
        self,
        kind: ClassKind | str,
        *,
        generation: Generation | str | None = None,
        enabled_only: bool = True,
    ) -> list[MajorGroup]:
        """Group the classes of one kind by major code (e.g. Open311 service groups).

        Args:
            kind: ``component`` or ``event``.
            generation: Only this generation; both when None (groups are per generation either way).
            enabled_only: Count only enabled classes; majors left empty are omitted.
        """
        groups: dict[tuple[Generation, str], list[ClassInfo]] = {}
        for c in self.all(kind, enabled_only=enabled_only, generation=generation):
            groups.setdefault((c.generation, c.major_code), []).append(c)
        return [
            MajorGroup(
                kind=members[0].kind,
                generation=gen,
                major_code=major,
                major_name_zh=members[0].major_name_zh,
                class_keys=tuple(c.key for c in members),
            )
            for (gen, major), members in groups.items()
        ]

    def mapping_old_to_new(self, key: str, *, loc: Loc = ()) -> str | None:
        """Return the GB/T 47678 key replacing a CJ/T 214 key of the same kind, or None if not known.

        The mapping is data and ignores ``enabled``; call :meth:`get` on the result to use it.

        Raises:
            InvalidInput: ``class.malformed`` for a malformed or GB/T 47678 key; ``class.unknown`` when the
                catalog has no such class (enabled or not).
        """
        self._known(key, Generation.CJT214, loc)
        return self._old_to_new.get(key)

    def mapping_new_to_old(self, key: str, *, loc: Loc = ()) -> str | None:
        """Return the CJ/T 214 key a GB/T 47678 key of the same kind replaces, or None if not known.

        Raises:
            InvalidInput: ``class.malformed`` for a malformed or CJ/T 214 key; ``class.unknown`` when the
                catalog has no such class (enabled or not).
        """
        self._known(key, Generation.GBT47678, loc)
        return self._new_to_old.get(key)

    def _known(self, key: str, generation: Generation, loc: Loc) -> None:
        if parse_class_key(key, loc=loc).generation is not generation:
            raise InvalidInput(
                f"{key} is not a {generation.value} class key", code="class.malformed", loc=loc
            )
        self.get(key, include_disabled=True, loc=loc)


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


def _flag(cells: Mapping[str, str], column: str) -> bool:
    value = cells[column]
    if value not in ("0", "1"):
        raise _DataError(f"must be 0 or 1, not {value!r}", column)
    return value == "1"


def _check_value(column: str, value: str) -> None:
    """Validate one non-empty cell of an optional or free column."""
    if column == "owner_kind" and value not in OWNER_KINDS:
        raise _DataError(f"unknown owner_kind {value!r} (see OWNER_KINDS)", column)
    if column == "confidence" and value not in CONFIDENCE_MARKERS:
        raise _DataError(f"confidence must be C, P or U, not {value!r}", column)
    if column == "mapping_basis" and value not in MAPPING_BASES:
        raise _DataError(f"unknown mapping_basis {value!r}", column)
    if column == "cjt214_code" and (not _is_digits(value, 4) or _class_code_problem(value)):
        raise _DataError(f"cjt214_code must be a 4-digit CJ/T 214 class code, not {value!r}", column)


def _row_key(cells: Mapping[str, str]) -> tuple[ClassKind, str]:
    try:
        kind = ClassKind(cells["kind"])
    except ValueError:
        raise _DataError(f"kind must be component or event, not {cells['kind']!r}", "kind") from None
    code = cells["code"]
    problem = _class_code_problem(code)
    if problem:
        raise _DataError(f"bad class code {code!r}: {problem}", "code")
    if cells.get("major_code") and cells["major_code"] != code[:2]:
        raise _DataError(f"major_code {cells['major_code']!r} does not match code {code}", "major_code")
    return kind, code


def _apply(cells: Mapping[str, str], base: ClassInfo) -> ClassInfo:
    """Return ``base`` with every non-empty cell of ``cells`` applied (``-`` clears optional columns)."""
    changes: dict[str, object] = {}
    for column, value in cells.items():
        if column in ("kind", "code", "major_code") or value == "":
            continue
        if value == _CLEAR:
            if column not in _CLEARABLE:
                raise _DataError(f"{column} cannot be cleared", column)
            changes[column] = {"aliases_zh": (), "cjt214_code": None}.get(column, "")
            continue
        if column in ("auto_dispatch", "enabled"):
            changes[column] = _flag(cells, column)
            continue
        _check_value(column, value)
        if column == "geometry":
            try:
                changes[column] = Geometry(value)
            except ValueError:
                raise _DataError(f"geometry must be point, line or polygon, not {value!r}", column) from None
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
        generation=_CODE_LENGTH[len(code)],
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
    names = (
        list(base_names) if base_names is not None else [f"base{i + 1}" for i in range(len(base_csv_texts))]
    )
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
                f"major {info.major_code} is named {info.major_name_zh!r} here"
                f" but {other_name!r} for {other_key}",
                "major_name_zh",
            )
        major_names.setdefault(group, (info.major_name_zh, key))
        if info.cjt214_code is not None:
            old_key = KIND_PREFIX[info.kind] + info.cjt214_code
            if old_key not in keys:
                raise _invalid(
                    source, line, f"cjt214_code {info.cjt214_code}: no class {old_key}", "cjt214_code"
                )
            if old_key in mapped_from:
                raise _invalid(
                    source, line, f"{old_key} is already mapped to {mapped_from[old_key]}", "cjt214_code"
                )
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
    return load_catalog(
        shipped_csv_texts(), override_csv_text, base_names=SHIPPED_FILES, override_name=override_name
    )
