"""Pure parsing and validation of the national codes (the class catalog is in :mod:`components.catalog`).

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

All validation failures raise :class:`gridcity.errors.InvalidInput` (HTTP 422) with a stable dotted code:
``class.malformed``, ``area.malformed_code``,
``component.malformed_id``, ``component.id_mismatch``, ``matter.malformed_code``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final, NamedTuple

from gridcity.errors import InvalidInput

Loc = Sequence[str | int]
"""Where in the caller's input a value came from (copied into the error's ``loc``)."""

_DIGITS: Final = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() would accept full-width ０-９


def is_digits(s: object, length: int | None = None) -> bool:
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


KIND_PREFIX: Final[Mapping[ClassKind, str]] = MappingProxyType({ClassKind.COMPONENT: "C", ClassKind.EVENT: "E"})
_PREFIX_KIND: Final[Mapping[str, ClassKind]] = MappingProxyType({v: k for k, v in KIND_PREFIX.items()})
CODE_LENGTH: Final[Mapping[int, Generation]] = MappingProxyType({4: Generation.CJT214, 5: Generation.GBT47678})

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
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 61 62 63 64 65 71 81 82".split()
)
"""First two digits of every GB/T 2260 province-level code."""

_AREA_LEVELS: Final[Mapping[int, AreaLevel]] = MappingProxyType(
    {6: AreaLevel.DISTRICT, 9: AreaLevel.STREET, 12: AreaLevel.COMMUNITY, 15: AreaLevel.GRID}
)


# --------------------------------------------------------------------------------------------------------
# Class keys
# --------------------------------------------------------------------------------------------------------


def class_code_problem(code: str) -> str | None:
    """Return why ``code`` is not a class code (4 or 5 ASCII digits, non-zero major and minor), or None."""
    if not is_digits(code) or len(code) not in CODE_LENGTH:
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
    problem = "it must start with C (component) or E (event)" if kind is None else class_code_problem(s[1:])
    if kind is None or problem is not None:
        raise InvalidInput(f"malformed class key {s!r}: {problem}", code="class.malformed", loc=loc)
    code = s[1:]
    return ClassKey(kind, code, CODE_LENGTH[len(code)])


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
    if not is_digits(s) or len(s) not in _AREA_LEVELS:
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
        raise InvalidInput(f"area sequence must be 1–999, got {sequence!r}", code="area.malformed_code", loc=loc)
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
    if not is_digits(s) or len(s) not in _ID_MINOR_DIGITS:
        problem: str | None = "a component ID is 16 (CJ/T 214) or 17 (GB/T 47678) ASCII digits"
    else:
        code = s[6:-6]
        problem = _district_problem(s[:6]) or class_code_problem(code)
        if problem is None and int(s[-6:]) == 0:
            problem = "sequence 000000 is not allowed"
    if problem is not None:
        raise InvalidInput(f"malformed component ID {s!r}: {problem}", code="component.malformed_id", loc=loc)
    return ComponentId(s[:6], "C" + code, int(s[-6:]), CODE_LENGTH[len(code)])


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
    if not is_digits(s, 11):
        problem: str | None = "a matter code is 11 ASCII digits"
    else:
        problem = _district_problem(s[:6]) or class_code_problem(s[6:])
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
