"""Tests for components.codes: class keys, area codes, component IDs, matter codes and the class catalog."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components import catalog_loader, codes
from components.catalog_loader import default_catalog, load_catalog
from components.codes import (
    AreaLevel,
    ClassKind,
    Generation,
    Geometry,
    check_component_id,
    child_area_code,
    format_component_id,
    format_matter_code,
    make_class_key,
    parent_code,
    parse_area_code,
    parse_class_key,
    parse_component_id,
    parse_matter_code,
)
from gridcity.errors import InvalidInput


def assert_code(exc_info: pytest.ExceptionInfo[InvalidInput], code: str) -> None:
    assert exc_info.value.code == code, exc_info.value.message


# ---------------------------------------------------------------------------------------------- class keys


def test_cjt214_class_key_parses_to_kind_code_and_generation() -> None:
    assert parse_class_key("C0101") == (ClassKind.COMPONENT, "0101", Generation.CJT214)
    assert parse_class_key("E0505") == ("event", "0505", "cjt214")


def test_gbt47678_class_key_has_five_digits() -> None:
    key = parse_class_key("E06010")
    assert (key.kind, key.code, key.generation) == (ClassKind.EVENT, "06010", Generation.GBT47678)
    assert (key.major_code, key.minor_code, str(key)) == ("06", "010", "E06010")


@pytest.mark.parametrize(
    "bad",
    ["", "C", "0101", "X0101", "c0101", "C010", "C010101", "C0001", "C0100", "C01000", "C00101",
     "C０１０１", " C0101", "C0101 ", "C01a1", "E-101"],
)  # fmt: skip
def test_malformed_class_keys_are_rejected(bad: str) -> None:
    with pytest.raises(InvalidInput) as exc_info:
        parse_class_key(bad, loc=["body", "class_key"])
    assert_code(exc_info, "class.malformed")
    assert exc_info.value.loc == ["body", "class_key"]


def test_make_class_key_prefixes_the_kind() -> None:
    assert make_class_key("component", "0101") == "C0101"
    assert make_class_key(ClassKind.EVENT, "06010") == "E06010"
    with pytest.raises(InvalidInput) as exc_info:
        make_class_key("matter", "06010")
    assert_code(exc_info, "class.malformed")


# ---------------------------------------------------------------------------------------------- area codes


def test_grid_code_parent_chain_reaches_the_district() -> None:
    grid = parse_area_code("110101001001001")
    assert grid.level is AreaLevel.GRID
    assert grid.sequence == 1
    assert grid.district_code == "110101"
    assert grid.lineage() == ("110101", "110101001", "110101001001", "110101001001001")
    assert parent_code("110101001001001") == "110101001001"
    assert parent_code("110101001001") == "110101001"
    assert parent_code("110101001") == "110101"
    assert parent_code("110101") is None
    assert [parse_area_code(c).level for c in grid.lineage()] == [
        AreaLevel.DISTRICT,
        AreaLevel.STREET,
        AreaLevel.COMMUNITY,
        AreaLevel.GRID,
    ]


def test_prefecture_level_city_without_districts_is_accepted() -> None:
    # 东莞 (441900) runs streets directly under the prefecture-level city
    assert parse_area_code("441900003").parent == "441900"


@pytest.mark.parametrize(
    "bad",
    [
        "110101001001000",  # grid sequence 000
        "110101001000001",  # community 000
        "110101000001001",  # street 000
        "11010100100100",  # 14 digits (the old CJ/T 213 length is not accepted)
        "1101010010010011",
        "11010A001001001",
        "１１０１０１",  # full-width digits
        "990101001001001",  # 99 is no province
        "100101",  # 10 is no province
        "110000",  # province-level, not county-level
        "",
    ],
)
def test_malformed_area_codes_are_rejected(bad: str) -> None:
    with pytest.raises(InvalidInput) as exc_info:
        parse_area_code(bad)
    assert_code(exc_info, "area.malformed_code")


def test_child_area_code_pads_the_sequence_and_refuses_out_of_range() -> None:
    assert child_area_code("110101001001", 7) == "110101001001007"
    cases = [("110101001001", 0), ("110101001001", 1000), ("110101", True), ("110101001001001", 1)]
    for parent, seq in cases:
        with pytest.raises(InvalidInput) as exc_info:
            child_area_code(parent, seq)
        assert_code(exc_info, "area.malformed_code")


# ---------------------------------------------------------------------------------------------- component IDs


def test_real_cjt214_component_id_parses() -> None:
    cid = parse_component_id("3205080101000001")
    assert cid.admin_code == "320508"
    assert cid.class_key == "C0101"
    assert cid.sequence == 1
    assert cid.generation is Generation.CJT214
    assert str(cid) == "3205080101000001"


def test_seventeen_digit_gbt47678_component_id_parses() -> None:
    cid = parse_component_id("61030201001000123")
    assert (cid.admin_code, cid.class_key, cid.sequence, cid.generation) == (
        "610302",
        "C01001",
        123,
        Generation.GBT47678,
    )


@pytest.mark.parametrize(
    "bad",
    [
        "320508010100001",  # 15 digits
        "320508010100000001",  # 18 digits
        "32050801010000O1",  # letter O
        "3205080101000000",  # sequence 000000
        "3205080001000001",  # major 00
        "3205080100000001",  # minor 00
        "32050801000000001",  # 17 digits, minor 000
        "9905080101000001",  # no such province
        "3205080101 00001",
        "",
    ],
)
def test_malformed_component_ids_are_rejected(bad: str) -> None:
    with pytest.raises(InvalidInput) as exc_info:
        parse_component_id(bad)
    assert_code(exc_info, "component.malformed_id")


def test_check_component_id_accepts_matching_data() -> None:
    cid = check_component_id("3205080101000001", class_key="C0101", admin_code="320508")
    assert cid.sequence == 1
    # the component's unit grid code works as admin_code too
    check_component_id("3205080101000001", class_key="C0101", admin_code="320508001001001")


@pytest.mark.parametrize(
    ("class_key", "admin_code"),
    [
        ("C0102", "320508"),  # other class
        ("C01001", "320508"),  # the mapped GB/T class is still another class
        ("E0101", "320508"),  # an event class
        ("C0101", "320506"),  # other district
        ("C0101", "320506001001001"),  # grid in another district
    ],
)
def test_check_component_id_reports_mismatch(class_key: str, admin_code: str) -> None:
    with pytest.raises(InvalidInput) as exc_info:
        check_component_id("3205080101000001", class_key=class_key, admin_code=admin_code, loc=["obj_id"])
    assert_code(exc_info, "component.id_mismatch")
    assert exc_info.value.loc == ["obj_id"]


def test_check_component_id_reports_a_malformed_id_before_comparing() -> None:
    with pytest.raises(InvalidInput) as exc_info:
        check_component_id("320508010100001", class_key="C0101", admin_code="320508")
    assert_code(exc_info, "component.malformed_id")


def test_format_component_id_refuses_event_classes_and_bad_sequences() -> None:
    assert format_component_id(admin_code="320508", class_key="C0101", sequence=1) == "3205080101000001"
    for key, seq in [("E0101", 1), ("C0101", 0), ("C0101", 1_000_000)]:
        with pytest.raises(InvalidInput) as exc_info:
            format_component_id(admin_code="320508", class_key=key, sequence=seq)
        assert_code(exc_info, "component.malformed_id")


def test_matter_code_round_trip_and_rejections() -> None:
    mc = parse_matter_code("61030206010")
    assert (mc.admin_code, mc.class_key, str(mc)) == ("610302", "E06010", "61030206010")
    assert format_matter_code(admin_code="610302001001001", class_key="E06010") == "61030206010"
    for bad in ("6103020601", "61030200000", "9903020601x"):
        with pytest.raises(InvalidInput) as exc_info:
            parse_matter_code(bad)
        assert_code(exc_info, "matter.malformed_code")
    with pytest.raises(InvalidInput) as exc_info:
        format_matter_code(admin_code="610302", class_key="E0102")
    assert_code(exc_info, "matter.malformed_code")


# ------------------------------------------------------------------------------------------- shipped catalog


def test_shipped_catalog_has_every_class_of_the_doc() -> None:
    cat = default_catalog()
    # standards.md §3.1 / §4.1: 85 CJ/T 214 component classes, 41 coded event classes (incl. [U])
    assert len(cat.all("component", generation="cjt214")) == 85
    assert len(cat.all("event", generation="cjt214")) == 41
    # §3.2 / §4.2: 153 components, 250 matters (153 "<component>异常" + 97 event-type matters)
    assert len(cat.all("component", generation="gbt47678")) == 153
    assert len(cat.all("event", generation="gbt47678")) == 250
    assert len(cat.all("component")) > 80
    assert len(cat.all("event")) > 50
    assert default_catalog() is cat


def test_shipped_csv_headers_start_with_the_agreed_columns() -> None:
    agreed = ["kind", "code", "major_code", "major_name_zh", "name_zh", "name_en", "owner_kind", "geometry",
              "auto_dispatch", "enabled"]  # fmt: skip
    for text in catalog_loader.shipped_csv_texts():
        header = next(csv.reader(io.StringIO(text)))
        assert header[: len(agreed)] == agreed
    gbt_header = next(csv.reader(io.StringIO(catalog_loader.shipped_csv_texts()[1])))
    assert "cjt214_code" in gbt_header


def test_gbt47678_gaps_in_the_source_stay_gaps() -> None:
    cat = default_catalog()
    for key in ("C01016", "C05001", "C05004", "C05008", "E06031", "E07005", "E09007"):
        with pytest.raises(InvalidInput) as exc_info:
            cat.get(key)
        assert_code(exc_info, "class.unknown")


def test_each_gbt47678_component_has_an_anomaly_matter_with_the_same_code() -> None:
    cat = default_catalog()
    for comp in cat.all("component", generation="gbt47678"):
        matter = cat.get("E" + comp.code)
        assert matter.name_zh == comp.name_zh + "异常"
        assert matter.major_code == comp.major_code


def test_known_classes_carry_their_data() -> None:
    cat = default_catalog()
    c = cat.get("C0101")
    assert (c.name_zh, c.major_name_zh) == ("上水井盖", "公用设施")
    assert (c.owner_kind, c.geometry) == ("water_supply", "point")
    assert c.enabled and not c.auto_dispatch and not c.local and c.confidence == "C"
    assert cat.get("C0114").aliases_zh == ("不明井盖",)
    assert cat.get("C0405").geometry is Geometry.POLYGON
    assert cat.get("E06010").name_zh == "暴露垃圾"
    assert cat.get("E0110").confidence == "U"
    assert {c.owner_kind for c in cat} <= set(codes.OWNER_KINDS)


def test_mapping_between_generations() -> None:
    cat = default_catalog()
    assert cat.mapping_old_to_new("C0101") == "C01001"  # 上水井盖 → 供水井盖
    assert cat.mapping_new_to_old("C01023") == "C0114"  # 不明井盖 ← 无主井盖 (不明井盖)
    assert cat.mapping_old_to_new("E0102") == "E06010"  # 暴露垃圾
    assert cat.mapping_new_to_old("E06036") == "E0507"  # 乱堆杂物 (2013: 乱堆物堆料)
    assert cat.get("E06036").mapping_basis == "alias"
    assert cat.mapping_old_to_new("C0117") is None  # 立杆 was split into five pole classes
    assert cat.mapping_new_to_old("E01001") is None  # anomaly matters have no CJ/T 214 event
    for new in cat.all(generation="gbt47678"):
        old = cat.mapping_new_to_old(new.key)
        if old is not None:
            assert cat.mapping_old_to_new(old) == new.key
            assert cat.get(old).kind is new.kind


def test_mapping_refuses_keys_of_the_wrong_generation_or_unknown() -> None:
    cat = default_catalog()
    with pytest.raises(InvalidInput) as exc_info:
        cat.mapping_old_to_new("C01001")
    assert_code(exc_info, "class.malformed")
    with pytest.raises(InvalidInput) as exc_info:
        cat.mapping_new_to_old("C0101")
    assert_code(exc_info, "class.malformed")
    with pytest.raises(InvalidInput) as exc_info:
        cat.mapping_old_to_new("C0199")
    assert_code(exc_info, "class.unknown")


def test_majors_group_classes_per_generation() -> None:
    groups = {(g.generation, g.major_code): g for g in default_catalog().majors("event")}
    assert groups[(Generation.CJT214, "05")].major_name_zh == "街面秩序"
    assert len(groups[(Generation.CJT214, "05")].class_keys) == 12
    assert groups[(Generation.GBT47678, "09")].major_name_zh == "街面秩序类"
    assert len(groups[(Generation.GBT47678, "06")].class_keys) == 51
    cjt_components = default_catalog().majors("component", generation="cjt214")
    assert [g.major_code for g in cjt_components] == ["01", "02", "03", "04", "05", "06"]


def test_get_rejects_malformed_and_unknown_keys() -> None:
    cat = default_catalog()
    with pytest.raises(InvalidInput) as exc_info:
        cat.get("bogus")
    assert_code(exc_info, "class.malformed")
    with pytest.raises(InvalidInput) as exc_info:
        cat.get("E0599", loc=["service_code"])
    assert_code(exc_info, "class.unknown")
    assert exc_info.value.status_code == 422
    assert exc_info.value.loc == ["service_code"]


# ---------------------------------------------------------------------------------------------- overrides

OVERRIDE = """\
kind,code,major_code,major_name_zh,name_zh,name_en,owner_kind,geometry,auto_dispatch,enabled
# 宝鸡 local additions
event,2101,21,扩展事件,垃圾满溢,overflowing bin,sanitation,point,1,1
component,0198,,,充电桩,EV charging post,asset_owner,point,0,1
event,06080,,,共享电单车乱停放,shared e-bike parking,urban_management,point,0,1
event,0102,,,,,,,,0
component,0101,,,,,water_affairs,,1,
"""


def test_override_adds_local_classes_disables_and_reassigns() -> None:
    cat = load_catalog(list(catalog_loader.shipped_csv_texts()), OVERRIDE)
    local = cat.get("E2101")
    assert (local.major_name_zh, local.name_zh) == ("扩展事件", "垃圾满溢")
    assert local.local and local.auto_dispatch
    assert cat.get("C0198").major_name_zh == "公用设施"  # inherited from the existing major
    assert cat.get("E06080").major_name_zh == "市容环境类"
    assert cat.get("E06080").generation is Generation.GBT47678
    with pytest.raises(InvalidInput) as exc_info:
        cat.get("E0102")
    assert_code(exc_info, "class.unknown")
    assert not cat.get("E0102", include_disabled=True).enabled
    assert "E0102" not in {c.key for c in cat.all("event")}
    assert "E0102" in {c.key for c in cat.all("event", enabled_only=False)}
    water = cat.get("C0101")
    assert (water.owner_kind, water.auto_dispatch, water.name_zh, water.local) == (
        "water_affairs",
        True,
        "上水井盖",
        False,
    )
    # the shipped catalog is untouched
    assert default_catalog().get("E0102").enabled


def test_override_with_a_partial_header_and_a_bom() -> None:
    text = "\ufeffkind,code,enabled\r\nevent,0505,0\r\n"
    cat = catalog_loader.city_catalog(text, override_name="baoji.csv")
    assert not cat.get("E0505", include_disabled=True).enabled


def test_override_can_set_and_clear_mappings() -> None:
    text = "kind,code,cjt214_code\ncomponent,01030,0117\nevent,06036,-\n"
    cat = catalog_loader.city_catalog(text)
    assert cat.mapping_old_to_new("C0117") == "C01030"
    assert cat.get("C01030").mapping_basis == "city"
    assert cat.mapping_new_to_old("E06036") is None
    assert cat.get("E06036").mapping_basis == ""


HEADER = "kind,code,major_code,major_name_zh,name_zh,name_en,owner_kind,geometry,auto_dispatch,enabled\n"


@pytest.mark.parametrize(
    ("override", "line", "column"),
    [
        (HEADER + "event,2101,21,扩展事件,x,x,sanitation,point,0,1\n"
         "event,2101,21,扩展事件,y,y,sanitation,point,0,1\n", 3, None),  # duplicate key in one file
        (HEADER + "# comment\n\nevent,2101,21,扩展事件,x,x,cleaning_company,point,0,1\n", 4, "owner_kind"),
        (HEADER + "incident,2101,21,扩展事件,x,x,sanitation,point,0,1\n", 2, "kind"),
        (HEADER + "event,210,21,扩展事件,x,x,sanitation,point,0,1\n", 2, "code"),
        (HEADER + "event,2100,21,扩展事件,x,x,sanitation,point,0,1\n", 2, "code"),
        (HEADER + "event,21001,22,扩展事件,x,x,sanitation,point,0,1\n", 2, "major_code"),
        (HEADER + "event,2101,21,扩展事件,x,x,sanitation,area,0,1\n", 2, "geometry"),
        (HEADER + "event,2101,21,扩展事件,x,x,sanitation,point,yes,1\n", 2, "auto_dispatch"),
        (HEADER + "event,2101,21,扩展事件,x,x,sanitation,point,0\n", 2, None),  # short row
        (HEADER + "event,2101,,,垃圾满溢,,sanitation,point,0,1\n", 2, "major_name_zh"),  # new major, no name
        (HEADER + "event,2199,21,扩展事件,,,,,,0\n", 2, "name_zh"),  # disabling an unknown class
        (HEADER + "event,0199,01,市容卫生,x,x,sanitation,point,0,1\n", 2, "major_name_zh"),  # major renamed
        ("kind,code,colour\nevent,0102,red\n", 1, None),  # unknown column
        ("code,enabled\n0102,0\n", 1, None),  # no kind column
        ("kind,code,cjt214_code\nevent,0102,0101\n", 2, "cjt214_code"),  # mapping on an old class
        ("kind,code,cjt214_code\nevent,06002,0199\n", 2, "cjt214_code"),  # mapping to a missing class
        ("kind,code,cjt214_code\nevent,06002,0102\n", 2, "cjt214_code"),  # E0102 already mapped to E06010
        ("kind,code,mapping_basis\nevent,06002,same_name\n", 2, "mapping_basis"),  # basis without mapping
        ("kind,code,name_zh\nevent,0102,-\n", 2, "name_zh"),  # name cannot be cleared
        ("kind,code,confidence\nevent,0102,Z\n", 2, "confidence"),
        ("kind,code,enabled\nevent,0102,-\n", 2, "enabled"),  # a flag cannot be cleared
        ("kind,code,geometry\nevent,0102,-\n", 2, "geometry"),
        ("kind,code,cjt214_code\nevent,06002,12\n", 2, "cjt214_code"),  # not a 4-digit code
    ],
)  # fmt: skip
def test_invalid_override_rows_are_reported_with_their_line(override: str, line: int, column: str | None) -> None:
    with pytest.raises(InvalidInput) as exc_info:
        catalog_loader.city_catalog(override, override_name="city.csv")
    err = exc_info.value
    assert_code(exc_info, "class.invalid_data")
    assert err.loc == ["city.csv", line]
    assert err.extra["file"] == "city.csv" and err.extra["line"] == line
    assert err.extra.get("column") == column
    assert err.message.startswith(f"city.csv line {line}")


def test_base_files_may_not_define_a_class_twice() -> None:
    extra = HEADER + "component,0101,01,公用设施,上水井盖,x,water_supply,point,0,1\n"
    with pytest.raises(InvalidInput) as exc_info:
        load_catalog([catalog_loader.shipped_csv_texts()[0], extra], base_names=["classes_cjt214.csv", "extra.csv"])
    assert_code(exc_info, "class.invalid_data")
    assert exc_info.value.loc == ["extra.csv", 2]
    assert "classes_cjt214.csv line 2" in exc_info.value.message


def test_base_files_need_every_required_column() -> None:
    with pytest.raises(InvalidInput) as exc_info:
        load_catalog(["kind,code,name_zh\ncomponent,0101,上水井盖\n"])
    assert_code(exc_info, "class.invalid_data")
    assert exc_info.value.loc == ["base1", 1]


def test_empty_file_is_rejected() -> None:
    with pytest.raises(InvalidInput) as exc_info:
        catalog_loader.city_catalog("\n# nothing\n")
    assert_code(exc_info, "class.invalid_data")


# ---------------------------------------------------------------------------------------------- properties

districts = st.builds(
    lambda p, rest: p + rest,
    st.sampled_from(sorted(codes.PROVINCE_PREFIXES)),
    st.integers(1, 9999).map(lambda n: f"{n:04d}"),
)
seqs = st.integers(1, 999)


@settings(database=None)
@given(districts, st.lists(seqs, min_size=0, max_size=3))
def test_area_code_round_trip(district: str, parts: list[int]) -> None:
    code = district
    for n in parts:
        child = child_area_code(code, n)
        assert parent_code(child) == code
        assert parse_area_code(child).sequence == n
        code = child
    area = parse_area_code(code)
    assert area.lineage()[0] == district
    assert area.lineage()[-1] == code
    assert len(area.lineage()) == len(parts) + 1


class_keys = st.one_of(
    st.builds(lambda ma, mi: f"C{ma:02d}{mi:02d}", st.integers(1, 99), st.integers(1, 99)),
    st.builds(lambda ma, mi: f"C{ma:02d}{mi:03d}", st.integers(1, 99), st.integers(1, 999)),
)


@settings(database=None)
@given(districts, class_keys, st.integers(1, 999_999))
def test_component_id_round_trip(district: str, class_key: str, sequence: int) -> None:
    formatted = format_component_id(admin_code=district, class_key=class_key, sequence=sequence)
    parsed = parse_component_id(formatted)
    assert (parsed.admin_code, parsed.class_key, parsed.sequence) == (district, class_key, sequence)
    assert parsed.generation is parse_class_key(class_key).generation
    assert len(formatted) == (16 if parsed.generation is Generation.CJT214 else 17)
    assert str(parsed) == formatted
    assert check_component_id(formatted, class_key=class_key, admin_code=district) == parsed


@settings(database=None)
@given(st.sampled_from("CE"), st.one_of(st.integers(101, 9999).map(str), st.integers(1001, 99999).map(str)))
def test_class_key_round_trip(prefix: str, number: str) -> None:
    code = number.zfill(4 if len(number) <= 4 else 5)
    try:
        key = parse_class_key(prefix + code)
    except InvalidInput as exc:
        assert exc.code == "class.malformed"
        assert code[:2] == "00" or int(code[2:]) == 0
    else:
        assert str(key) == prefix + code
        assert make_class_key(key.kind, key.code) == prefix + code


@settings(database=None)
@given(st.text(max_size=20))
def test_parsers_only_ever_raise_invalid_input(text: str) -> None:
    for parse in (parse_class_key, parse_area_code, parse_component_id, parse_matter_code):
        try:
            parse(text)
        except InvalidInput:
            pass


@settings(database=None)
@given(st.from_regex(r"[0-9]{16,17}", fullmatch=True))
def test_digit_strings_parse_or_fail_cleanly(text: str) -> None:
    try:
        parsed = parse_component_id(text)
    except InvalidInput as exc:
        assert exc.code == "component.malformed_id"
    else:
        assert str(parsed) == text
