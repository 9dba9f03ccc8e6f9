"""Built-in regions: the shipped table, the migration that loads it, and naming a region in an
import by code, earlier short code, Chinese or English name, on a clean database (no demo)."""

from __future__ import annotations

import importlib
import io
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
from tortoise import connections

from storage.choices import record_choice
from storage.importer import import_csv
from storage.models import Customer, Region
from storage.plates import plate_prefixes, plate_region
from storage.regions import RegionNames, builtin_regions, plain

# Independent reference points (city centres per GeoNames / Wikipedia), to check the shipped
# coordinates are the city's and not a province's or a neighbour's.
REFERENCE = {
    "110000": ("北京", "Beijing", 39.904, 116.407),
    "310000": ("上海", "Shanghai", 31.222, 121.458),
    "120000": ("天津", "Tianjin", 39.142, 117.177),
    "500000": ("重庆", "Chongqing", 29.563, 106.552),
    "440300": ("深圳", "Shenzhen", 22.546, 114.068),
    "440100": ("广州", "Guangzhou", 23.129, 113.264),
    "330100": ("杭州", "Hangzhou", 30.274, 120.155),
    "510100": ("成都", "Chengdu", 30.573, 104.067),
    "230100": ("哈尔滨", "Harbin", 45.750, 126.650),
    "650100": ("乌鲁木齐", "Ürümqi", 43.801, 87.600),
    "540100": ("拉萨", "Lhasa", 29.650, 91.100),
    "460200": ("三亚", "Sanya", 18.253, 109.512),
    "810000": ("香港", "Hong Kong", 22.278, 114.175),
    "820000": ("澳门", "Macau", 22.200, 113.546),
}


def km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (math.sin((p2 - p1) / 2) ** 2
         + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2)
    return 6371.0 * 2 * math.asin(math.sqrt(a))


def test_builtin_table_has_every_prefecture_city_the_municipalities_hk_and_macau() -> None:
    regions = {r.code: r for r in builtin_regions()}
    cities = [r for r in regions.values() if r.parent]
    provinces = [r for r in regions.values() if not r.parent]
    assert len(cities) == 333  # prefecture-level divisions of the mainland
    assert len(provinces) == 33  # 22 provinces, 5 autonomous regions, 4 municipalities, HK, Macau
    assert all(r.parent in regions and not regions[r.parent].parent for r in cities)
    assert len(regions) == len(builtin_regions())  # codes are unique
    aliases = [r.alias for r in regions.values() if r.alias]
    assert len(aliases) == len(set(aliases)) == 12
    # 三沙 lies at 16.8° N
    assert all(16 <= r.latitude <= 54 and 73 <= r.longitude <= 135 for r in regions.values())
    assert "710000" not in regions  # no data below province level for Taiwan


@pytest.mark.parametrize("code", sorted(REFERENCE))
def test_builtin_coordinates_and_names_match_reference_cities(code: str) -> None:
    name, english, lat, lon = REFERENCE[code]
    region = next(r for r in builtin_regions() if r.code == code)
    assert (region.name, region.name_en) == (name, english)
    assert km(region.latitude, region.longitude, lat, lon) < 25


def test_short_names_drop_suffixes_and_peoples() -> None:
    names = {r.full_name: r.name for r in builtin_regions()}
    assert names["深圳市"] == "深圳"
    assert names["广西壮族自治区"] == "广西"
    assert names["黔南布依族苗族自治州"] == "黔南"
    assert names["海西蒙古族藏族自治州"] == "海西"
    assert names["博尔塔拉蒙古自治州"] == "博尔塔拉"
    assert names["阿拉善盟"] == "阿拉善"
    assert names["香港特别行政区"] == "香港"
    assert next(r for r in builtin_regions() if r.code == "650100").timezone == "Asia/Urumqi"


async def test_clean_database_has_the_builtin_regions(db: str) -> None:
    assert await Region.filter(builtin=True).count() == len(builtin_regions())
    shenzhen = await Region.get(code="440300")
    assert (shenzhen.name, shenzhen.full_name, shenzhen.name_en, shenzhen.alias,
            shenzhen.parent) == ("深圳", "深圳市", "Shenzhen", "SZ", "440000")


async def test_region_names_resolve_code_alias_chinese_and_english(db: str) -> None:
    names = await RegionNames.load()
    ids = dict(await Region.filter(code__in=["310000", "440300", "610100", "650100"])
               .values_list("code", "id"))
    for text in ("310000", "SH", "sh", "上海", "上海市", "Shanghai", " shanghai "):
        assert names.resolve(text) == ids["310000"], text
    for text in ("深圳", "深圳市", "SHENZHEN", "SZ"):
        assert names.resolve(text) == ids["440300"], text
    assert names.resolve("Xi'an") == names.resolve("xian") == ids["610100"]
    assert names.resolve("Urumqi") == ids["650100"]


async def test_unknown_region_suggests_and_shared_name_is_ambiguous(db: str) -> None:
    names = await RegionNames.load()
    with pytest.raises(ValueError, match=r"^unknown region '深玔' \(did you mean 深圳市\?\)$"):
        names.resolve("深玔")
    with pytest.raises(ValueError, match=r"did you mean 深圳市\?"):
        names.resolve("深圳市南山区")
    with pytest.raises(ValueError, match=r"did you mean 深圳市 \(Shenzhen\)\?"):
        names.resolve("Shenzen")
    with pytest.raises(ValueError, match=r"ambiguous region '吉林' \(吉林市 \(220200\) or "
                                         r"吉林省 \(220000\)\?\)"):
        names.resolve("吉林")
    assert names.resolve("吉林市") == (await Region.get(code="220200")).id


async def test_import_names_regions_by_code_name_alias_or_english(db: str,
                                                                   tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    path.write_text("phone,name,region\n"
                    "13800138001,按代码,440300\n"
                    "13800138002,按中文,深圳市\n"
                    "13800138003,按简称,上海\n"
                    "13800138004,by English,Chengdu\n"
                    "13800138005,旧代码,BJ\n"
                    "13800138006,写错,深玔\n", encoding="utf-8")
    out = io.StringIO()

    report = await import_csv("customers", path, out=out)

    assert out.getvalue().splitlines()[0] == \
        "line 7: region: unknown region '深玔' (did you mean 深圳市?)"
    assert (report.created, report.rejected) == (5, 1)
    got = dict(await Customer.all().values_list("name", "region__code"))
    assert got == {"按代码": "440300", "按中文": "440300", "按简称": "310000",
                   "by English": "510100", "旧代码": "110000"}
    assert await Customer.filter(region_set_by="import").count() == 5


async def test_migration_adopts_a_short_code_region_of_an_earlier_install(db: str) -> None:
    migration = importlib.import_module("storage.migrations.0015_builtin_regions")
    # an install before 0015: its own Shanghai under the short code, with customers
    await Customer.filter().delete()
    await Region.all().delete()
    legacy = await Region.create(code="SH", name="上海", latitude=31.2, longitude=121.5)
    other = await Region.create(code="island", name="崇明岛", latitude=31.6, longitude=121.6)
    customer = await Customer.create(name="老客户", phone="+8613800138000", region=legacy,
                                     referral_code="OLD1")
    editor = SimpleNamespace(client=connections.get("default"))

    await migration._load_builtin_regions(None, editor)
    await migration._load_builtin_regions(None, editor)  # running twice changes nothing

    shanghai = await Region.get(code="310000")
    assert shanghai.id == legacy.id and shanghai.alias == "SH" and shanghai.builtin
    assert (await Customer.get(id=customer.id)).region_id == legacy.id
    assert await Region.filter(code="island").count() == 1 and not other.builtin
    assert await Region.all().count() == len(builtin_regions()) + 1
    assert plain(shanghai.name_en) == "shanghai"


# -- region inferred from a plate or an address ------------------------------------------------

PROVINCE_PLATES = {
    "京": "110000", "津": "120000", "沪": "310000", "渝": "500000", "冀": "130000",
    "晋": "140000", "蒙": "150000", "辽": "210000", "吉": "220000", "黑": "230000",
    "苏": "320000", "浙": "330000", "皖": "340000", "闽": "350000", "赣": "360000",
    "鲁": "370000", "豫": "410000", "鄂": "420000", "湘": "430000", "粤": "440000",
    "桂": "450000", "琼": "460000", "川": "510000", "贵": "520000", "云": "530000",
    "藏": "540000", "陕": "610000", "甘": "620000", "青": "630000", "宁": "640000",
    "新": "650000",
}
# The capital's letter of each province (A, but 闽D is Xiamen and 闽A Fuzhou all the same)
CAPITALS = {
    "冀A": "130100", "晋A": "140100", "蒙A": "150100", "辽A": "210100", "吉A": "220100",
    "黑A": "230100", "苏A": "320100", "浙A": "330100", "皖A": "340100", "闽A": "350100",
    "赣A": "360100", "鲁A": "370100", "豫A": "410100", "鄂A": "420100", "湘A": "430100",
    "粤A": "440100", "桂A": "450100", "琼A": "460100", "川A": "510100", "贵A": "520100",
    "云A": "530100", "藏A": "540100", "陕A": "610100", "甘A": "620100", "青A": "630100",
    "宁A": "640100", "新A": "650100",
}


@pytest.mark.parametrize("province", sorted(PROVINCE_PLATES))
def test_each_province_character_names_its_province_and_its_capital(province: str) -> None:
    code = PROVINCE_PLATES[province]
    # a letter the table does not cover (Z: none is a prefecture's) falls back to the province
    assert plate_region(f"{province}Z·12345") in (code, "511400")  # 川Z is 眉山
    if f"{province}A" in CAPITALS:
        assert plate_region(f"{province}A12345") == CAPITALS[f"{province}A"]
    else:  # a municipality: every letter is the city
        assert plate_region(f"{province}A12345") == code


@pytest.mark.parametrize(("plate", "code"), [
    ("粤B·D12345", "440300"), ("粤b 12345", "440300"), ("沪A-88888", "310000"),
    ("闽D12345", "350200"), ("鲁U12345", "370200"), ("川U12345", "513200"),
    ("新A12345", "650100"), ("粤Z1234港", "440000"), ("京N12345", "110000"),
    ("ABC123", None), ("", None)])
def test_plate_prefix_names_city_where_covered(plate: str, code: str | None) -> None:
    assert plate_region(plate) == code


def test_plate_table_names_only_builtin_regions_under_their_province() -> None:
    regions = {r.code: r for r in builtin_regions()}
    for prefix, code in plate_prefixes().items():
        assert code in regions, prefix
        if len(prefix) == 2:
            assert regions[code].parent == PROVINCE_PLATES[prefix[0]], prefix
    cities = {r.code for r in regions.values() if r.parent}
    assert cities - set(plate_prefixes().values()) == {"460300", "460400"}  # 三沙, 儋州


@pytest.mark.parametrize(("address", "code"), [
    ("广东省深圳市南山区科技园", "440300"), ("深圳南山", "440300"),
    ("吉林省长春市朝阳区", "220100"), ("吉林省吉林市船营区", "220200"),
    ("北京朝阳区建国路", "110000"), ("上海市浦东新区", "310000"),
    ("青海省海南藏族自治州共和县", "632500"), ("海南省海口市", "460100"),
    ("Room 5, somewhere", None)])
async def test_address_names_the_city_else_the_province(db: str, address: str,
                                                       code: str | None) -> None:
    names = await RegionNames.load()
    found = names.in_address(address)
    assert (names.get(found).code if found is not None else None) == code


async def test_import_infers_region_from_address_then_plate_and_never_over_a_choice(
        db: str, tmp_path: Path) -> None:
    customers = tmp_path / "customers.csv"
    customers.write_text("customer_no,phone,name,region,address\n"
                         "C1,13800138001,有代码,310000,广东省深圳市南山区\n"
                         "C2,13800138002,有地址,,广东省深圳市南山区科技园\n"
                         "C3,13800138003,只有车牌,,\n"
                         "C4,13800138004,自己选了,,\n"
                         "C5,13800138005,地址不明,,某某小区\n", encoding="utf-8")
    policies = tmp_path / "policies.csv"
    policies.write_text(
        "number,customer_no,product,plate,start_date,end_date,premium\n"
        "P1,C1,commercial,京A12345,2026-01-01,2026-12-31,3000\n"
        "P2,C2,commercial,京A12346,2026-01-01,2026-12-31,3000\n"
        "P3,C3,commercial,粤B·D1234,2026-01-01,2026-12-31,3000\n"
        "P4,C4,commercial,川A12345,2026-01-01,2026-12-31,3000\n"
        "P5,C5,commercial,琼C12345,2026-01-01,2026-12-31,3000\n", encoding="utf-8")
    await import_csv("customers", customers, out=io.StringIO())
    chose = await Customer.get(customer_no="C4")
    await record_choice(chose.id, source="telegram", now=chose.created_at,
                        region_id=(await Region.get(code="330100")).id)

    await import_csv("policies", policies, out=io.StringIO())
    await import_csv("customers", customers, out=io.StringIO())  # again: changes nothing

    got = {c: (code, by) for c, code, by in await Customer.all().values_list(
        "customer_no", "region__code", "region_set_by")}
    assert got == {"C1": ("310000", "import"), "C2": ("440300", "address"),
                   "C3": ("440300", "plate"), "C4": ("330100", "telegram"),
                   "C5": ("460000", "plate")}  # 琼C: a county-level city, so the province


async def test_an_imported_region_replaces_an_inferred_one(db: str, tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("customer_no,phone,name,address\nC1,13800138001,甲,深圳市福田区\n",
                    encoding="utf-8")
    await import_csv("customers", path, out=io.StringIO())
    path.write_text("customer_no,phone,name,region\nC1,13800138001,甲,杭州\n", encoding="utf-8")

    await import_csv("customers", path, out=io.StringIO())

    c = await Customer.get(customer_no="C1").prefetch_related("region")
    assert (c.region.code, c.region_set_by) == ("330100", "import")
