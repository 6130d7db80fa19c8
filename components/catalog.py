"""The class catalog: every component and event class the city uses, with its names, owner and flags.

Pure data and look-ups (``class.unknown`` for a key it does not hold); it is built from the shipped CSV files
plus an optional per-city override by :mod:`components.catalog_loader`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from components.codes import KIND_PREFIX, ClassKind, Generation, Geometry, parse_class_key
from gridcity.errors import InvalidInput

Loc = Sequence[str | int]


_GENERATION_ORDER: Final = {Generation.CJT214: 0, Generation.GBT47678: 1}
_KIND_ORDER: Final = {ClassKind.COMPONENT: 0, ClassKind.EVENT: 1}


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
            if (k is None or c.kind is k) and (g is None or c.generation is g) and (c.enabled or not enabled_only)
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
            raise InvalidInput(f"{key} is not a {generation.value} class key", code="class.malformed", loc=loc)
        self.get(key, include_disabled=True, loc=loc)
