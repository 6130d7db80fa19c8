"""Standard addresses (标准地址 / 门牌): normalised text, the bigram index, and the look-up.

The look-up finds an address from partial Chinese input ("经二路12", "中心医院", "渭滨 经二路 十二号" is not
a goal: numbers are matched as written, in ASCII or full-width digits). Its index is a plain table of
character bigrams (:class:`components.models.AddressGram`) that works the same on SQLite and PostgreSQL:

0. names that begin with the input (a B-tree range on the normalised name, ``spatial.prefix_range_sql``)
   rank first; when there are ``limit`` of them (经二路12 → 经二路12号, 经二路120号 …) that is the answer;
1. otherwise the query is normalised like the stored text (NFKC, lower case, no spaces or punctuation, traditional
   characters of addresses folded to simplified) and cut into bigrams;
2. each bigram's posting count is read, capped at ``DF_CAP`` (a bounded index range scan); a bigram with
   no posting ends the search with nothing;
3. the rarest bigram's postings are joined to the addresses, every other bigram is checked on the
   candidate's text, and the candidates are ranked in SQL: exact name, name prefix, the whole query as
   one substring, then all bigrams anywhere; ties go to the shorter (more specific) text.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.orm import Session

from components.models import Address, Area
from gridcity import spatial
from gridcity.errors import InvalidInput, NotFound

DF_CAP = 300
"""Posting counts are read up to this many rows: enough to pick a rare bigram, cheap for common ones."""
MAX_QUERY = 60

# Traditional forms of characters common in Chinese addresses, folded to the simplified form (both in the
# stored text and in the query), so that 經二路12號 finds 经二路12号.
_TRAD_PAIRS = (
    "區区號号門门東东陽阳園园廣广場场樓楼單单與与寶宝濱滨經经緯纬橋桥灣湾莊庄鎮镇縣县聖圣興兴華华國国綠绿長长開开關关雞鸡臺台"
    "衛卫醫医學学務务館馆書书電电車车業业廠厂農农貿贸義义龍龙鳳凤雲云嶺岭豐丰黃黄麗丽紅红靈灵觀观蘭兰歡欢氣气鐵铁條条層层團团衚胡衕同會会舊旧"
)
_TRAD = str.maketrans(_TRAD_PAIRS[0::2], _TRAD_PAIRS[1::2])


def normalize(text: str) -> str:
    """The searchable form of a text: NFKC, lower case, simplified, letters/digits/CJK only."""
    text = unicodedata.normalize("NFKC", text).lower().translate(_TRAD)
    return "".join(ch for ch in text if ch.isalnum())


def bigrams(norm: str) -> list[str]:
    """The distinct character bigrams of a normalised text, in order (a 1-character text is its own gram)."""
    if len(norm) < 2:
        return [norm] if norm else []
    seen: dict[str, None] = {}
    for i in range(len(norm) - 1):
        seen.setdefault(norm[i : i + 2], None)
    return list(seen)


def index_rows(address_id: int, search_text: str) -> list[tuple[str, int]]:
    """The ``address_gram`` rows of one address."""
    return [(g, address_id) for g in bigrams(search_text) if len(g) == 2]


@dataclass(frozen=True)
class AddressRow:
    """A standard address as the look-up reads it (plain columns, no ORM object: the look-up is hot)."""

    id: int
    code: str
    kind: str
    name: str
    road: str | None
    number: str | None
    full_name: str
    lon: float
    lat: float
    grid_code: str | None
    community_code: str | None


@dataclass(frozen=True)
class Hit:
    """One ranked look-up result."""

    address: AddressRow | Address
    rank: int  # 0 exact name, 1 name prefix, 2 substring, 3 all bigrams
    community_name: str | None
    street_name: str | None


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


_COLUMNS = "a.id, a.code, a.kind, a.name, a.road, a.number, a.full_name, a.lon, a.lat, a.grid_code, a.community_code"
_RANK = (
    "CASE WHEN a.name_key = :q THEN 0 WHEN a.name_key LIKE :prefix ESCAPE '\\' THEN 1 "
    "WHEN a.search_text LIKE :inner ESCAPE '\\' THEN 2 ELSE 3 END"
)


@lru_cache(maxsize=64)
def _counts_sql(n: int) -> sa.TextClause:
    # The posting count of each of n bigrams, each capped (a bounded range scan of the primary key).
    parts = [
        f"(SELECT count(*) FROM (SELECT 1 FROM address_gram WHERE gram = :g{i} LIMIT {DF_CAP}) AS t{i})"
        for i in range(n)
    ]
    return sa.text("SELECT " + ", ".join(parts))


@lru_cache(maxsize=64)
def _lookup_sql(n_other: int) -> sa.TextClause:
    # Candidates: the postings of the rarest bigram; every other bigram must occur in the candidate's text.
    others = "".join(f" AND a.search_text LIKE :o{i} ESCAPE '\\'" for i in range(n_other))
    return sa.text(
        f"SELECT {_COLUMNS}, {_RANK} AS rank FROM address_gram g JOIN address a ON a.id = g.address_id "
        f"WHERE g.gram = :rare{others} ORDER BY rank, length(a.search_text), a.id LIMIT :limit"
    )


@lru_cache(maxsize=4)
def _prefix_sql(dialect_name: str) -> sa.TextClause:
    # Names that begin with the input (ranks 0 and 1): a B-tree range on the normalised name.
    where = spatial.prefix_range_sql(dialect_name, "a.name_key", "lo", "hi")
    return sa.text(
        f"SELECT {_COLUMNS}, CASE WHEN a.name_key = :q THEN 0 ELSE 1 END AS rank FROM address a "
        f"WHERE {where} ORDER BY rank, length(a.search_text), a.id LIMIT :limit"
    )


def _next_prefix(norm: str) -> str:
    """The smallest string greater than every string that begins with ``norm`` (in code-point order)."""
    return norm[:-1] + chr(ord(norm[-1]) + 1)


def lookup(session: Session, q: str, *, limit: int = 10) -> list[Hit]:
    """The standard addresses matching the partial input ``q``, best first."""
    norm = normalize(q or "")
    if not norm:
        raise InvalidInput("type part of an address", code="address.empty_query", loc=["query", "q"])
    norm = norm[:MAX_QUERY]
    grams = bigrams(norm)
    params: dict[str, Any] = {
        "q": norm,
        "prefix": _escape(norm) + "%",
        "inner": "%" + _escape(norm) + "%",
        "limit": limit,
        "lo": norm,
        "hi": _next_prefix(norm),
    }
    # Names beginning with the input rank before everything else: when there are enough of them (the usual
    # 经二路12 → 经二路12号, 经二路120号 …) the index range answers alone and the bigrams are not needed.
    rows = session.execute(_prefix_sql(spatial.dialect(session)), params).all()
    if len(norm) >= 2 and len(rows) < limit:
        counts = session.execute(_counts_sql(len(grams)), {f"g{i}": g for i, g in enumerate(grams)}).one()
        if min(counts) == 0:
            rows = []  # a bigram nobody has: nothing matches
        else:
            rare = min(range(len(grams)), key=lambda i: counts[i])
            others = [g for i, g in enumerate(grams) if i != rare]
            params.update({"rare": grams[rare], **{f"o{i}": "%" + _escape(g) + "%" for i, g in enumerate(others)}})
            rows = session.execute(_lookup_sql(len(others)), params).all()
    found = [(AddressRow(*r[:11]), int(r[11])) for r in rows]
    names = _area_names(session, [a.community_code for a, _ in found])
    return [Hit(a, rk, names.get(a.community_code or ""), names.get((a.community_code or "")[:9])) for a, rk in found]


def _area_names(session: Session, community_codes: Iterable[str | None]) -> dict[str, str]:
    codes = {c for c in community_codes if c}
    wanted = codes | {c[:9] for c in codes}
    if not wanted:
        return {}
    return dict(session.execute(select(Area.code, Area.name).where(Area.code.in_(wanted))).all())


def get_address(session: Session, address_id: int, *, loc: Sequence[str | int]) -> Address:
    """A standard address by id, or a 422 naming the field."""
    addr = session.get(Address, address_id)
    if addr is None:
        raise InvalidInput(f"unknown address {address_id}", code="address.unknown", loc=loc)
    return addr


def read_address(session: Session, address_id: int) -> Address:
    """A standard address by id, or 404."""
    addr = session.get(Address, address_id)
    if addr is None:
        raise NotFound(f"address {address_id} not found", code="address.not_found")
    return addr


def best_match(session: Session, text: str) -> AddressRow | Address | None:
    """The best standard address for a free-text address (Open311 ``address_string``), or None."""
    try:
        hits = lookup(session, text, limit=1)
    except InvalidInput:
        return None
    return hits[0].address if hits else None


def hit_dict(hit: Hit) -> dict[str, Any]:
    """The API's shape of a hit."""
    a = hit.address
    return {
        "id": a.id,
        "code": a.code,
        "kind": a.kind,
        "name": a.name,
        "full_name": a.full_name,
        "road": a.road,
        "number": a.number,
        "lon": a.lon,
        "lat": a.lat,
        "grid_code": a.grid_code,
        "community_code": a.community_code,
        "community_name": hit.community_name,
        "street_name": hit.street_name,
        "rank": hit.rank,
    }
