"""Deterministic demo data: regions, customers, policies, claims with timelines, payments.

Generation is pure: customer ``i`` of a seed is always the same person (name, phone, region,
referral code, vehicles, claims) whatever the number of customers asked for, so 300 after 200
adds exactly the next 100. Each customer draws from its own ``random.Random`` keyed by
(seed, index), and nothing about *who* they are or *which* policies and claims they hold
depends on ``today`` — only the dates do, as offsets from it. Phones and referral codes are
bijections of the index, so they never collide within a seed — except that one customer in
``HOUSEHOLD_EVERY`` shares the phone of the one before (a couple), as real books have.

Persistence is idempotent on natural keys (region code, customer number, policy number, claim
number, claim-event external id, payment external id): rows already present are counted and left
untouched, so a second run creates nothing. Each batch of customers is written in its own
transaction, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import calendar
import logging
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from itertools import accumulate
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from tortoise.models import Model
from tortoise.transactions import in_transaction

from storage.identity import comparable_name
from storage.models import (
    Claim,
    ClaimEvent,
    ClaimStatus,
    Customer,
    Language,
    Payment,
    PaymentKind,
    Policy,
    PolicyStatus,
    Product,
    Region,
)

log = logging.getLogger(__name__)

DEFAULT_SEED = 2026

# Days from "today" to a policy's end on which the renewal and lapse rules have work
# (T-60, the weekly month-before reminders, and a lapse three days ago).
RENEWAL_MARKS: tuple[int, ...] = (60, 30, 23, 16, 9, 2, -3)

# No 0/O, 1/I: codes are read aloud and typed from SMS.
REFERRAL_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
REFERRAL_LENGTH = 8

PAYMENT_PREFIX = "DEMO-PAY-"


@dataclass(frozen=True, slots=True)
class DemoRegion:
    code: str
    name: str
    name_en: str
    latitude: float
    longitude: float
    timezone: str
    plate_prefixes: tuple[str, ...]
    weight: int  # share of the demo's customers


REGIONS: tuple[DemoRegion, ...] = (
    DemoRegion("BJ", "北京", "Beijing", 39.9042, 116.4074, "Asia/Shanghai",
               ("京A", "京B", "京C", "京E", "京F", "京G", "京H", "京J", "京K", "京L", "京M",
                "京N", "京P", "京Q"), 14),
    DemoRegion("SH", "上海", "Shanghai", 31.2304, 121.4737, "Asia/Shanghai",
               ("沪A", "沪B", "沪D", "沪E", "沪F", "沪G", "沪H", "沪J", "沪K", "沪L", "沪M",
                "沪N"), 14),
    DemoRegion("GZ", "广州", "Guangzhou", 23.1291, 113.2644, "Asia/Shanghai", ("粤A",), 10),
    DemoRegion("SZ", "深圳", "Shenzhen", 22.5431, 114.0579, "Asia/Shanghai", ("粤B",), 10),
    DemoRegion("HZ", "杭州", "Hangzhou", 30.2741, 120.1551, "Asia/Shanghai", ("浙A",), 8),
    DemoRegion("CD", "成都", "Chengdu", 30.5728, 104.0668, "Asia/Shanghai", ("川A",), 9),
    DemoRegion("WH", "武汉", "Wuhan", 30.5928, 114.3055, "Asia/Shanghai", ("鄂A",), 7),
    DemoRegion("XA", "西安", "Xi'an", 34.3416, 108.9398, "Asia/Shanghai", ("陕A",), 6),
    DemoRegion("NJ", "南京", "Nanjing", 32.0603, 118.7969, "Asia/Shanghai", ("苏A",), 6),
    DemoRegion("CQ", "重庆", "Chongqing", 29.5630, 106.5516, "Asia/Shanghai",
               ("渝A", "渝B", "渝D"), 8),
    DemoRegion("HRB", "哈尔滨", "Harbin", 45.8038, 126.5350, "Asia/Shanghai", ("黑A",), 4),
    DemoRegion("URC", "乌鲁木齐", "Ürümqi", 43.8256, 87.6168, "Asia/Urumqi", ("新A",), 3),
)
_REGION_WEIGHTS = tuple(r.weight for r in REGIONS)

# Surnames roughly in order of frequency; the common ones are drawn more often.
_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林高罗郑梁谢宋唐许韩邓冯曹彭曾肖田董潘袁蔡蒋余于杜叶程魏"
    "苏吕丁任卢姚沈钟姜崔谭陆范汪廖石金韦贾夏付方邹熊白孟秦邱侯江尹薛闫段雷龙黎史陶贺毛郝顾龚邵"
    "万覃武钱戴严"
)
_SURNAME_CUM_WEIGHTS = tuple(
    accumulate(7 if i < 5 else 4 if i < 10 else 2 if i < 30 else 1 for i in range(len(_SURNAMES)))
)
_COMPOUND_SURNAMES = ("欧阳", "司马", "上官", "诸葛")
_GIVEN_MALE = "伟强磊军勇杰涛斌超明刚平辉鹏华飞鑫波宇浩凯健俊帆旭宁龙林阳志国建文博轩然航晨"
_GIVEN_FEMALE = "芳娜敏静丽艳娟霞燕玲婷雪慧颖琳倩洁晶欣怡萱悦佳梦雨思诗嘉涵桐瑶彤琪璐"

_EN_FIRST = ("James", "Michael", "David", "Daniel", "Thomas", "Andrew", "Peter", "Mark",
             "Kevin", "Jason", "Emily", "Sarah", "Emma", "Olivia", "Sophie", "Laura", "Anna",
             "Lucy", "Grace", "Alice")
_EN_LAST = ("Smith", "Johnson", "Brown", "Taylor", "Wilson", "Martin", "Anderson", "Clark",
            "Walker", "Wright", "Green", "Müller", "Schmidt", "Dubois", "Rossi", "Tanaka",
            "Kim", "Lee", "Chan", "Novak")

# Mainland mobile prefixes that phonenumbers accepts with any eight digits after them (its CN
# mobile pattern depends on these three digits only), so the numbers pass normalise_phone.
_MOBILE_PREFIXES = (
    "130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152",
    "153", "155", "156", "157", "158", "159", "166", "173", "175", "176", "177", "178",
    "180", "181", "182", "183", "185", "186", "187", "188", "189", "191", "198", "199",
)


@dataclass(frozen=True, slots=True)
class _Model:
    zh: str
    en: str
    new_energy: bool
    band: int  # 1 economy … 4 luxury: sets the commercial premium and vehicle value
    since: int  # first model year


_VEHICLES: tuple[_Model, ...] = (
    _Model("大众 朗逸", "Volkswagen Lavida", False, 1, 2013),
    _Model("大众 帕萨特", "Volkswagen Passat", False, 2, 2011),
    _Model("丰田 卡罗拉", "Toyota Corolla", False, 1, 2014),
    _Model("丰田 凯美瑞", "Toyota Camry", False, 2, 2012),
    _Model("本田 雅阁", "Honda Accord", False, 2, 2013),
    _Model("本田 思域", "Honda Civic", False, 1, 2016),
    _Model("日产 轩逸", "Nissan Sylphy", False, 1, 2012),
    _Model("别克 英朗", "Buick Excelle GT", False, 1, 2015),
    _Model("吉利 星瑞", "Geely Preface", False, 1, 2020),
    _Model("长安 CS75 PLUS", "Changan CS75 PLUS", False, 1, 2019),
    _Model("哈弗 H6", "Haval H6", False, 1, 2014),
    _Model("红旗 H5", "Hongqi H5", False, 2, 2018),
    _Model("奥迪 A4L", "Audi A4L", False, 3, 2013),
    _Model("宝马 3系", "BMW 3 Series", False, 3, 2013),
    _Model("宝马 5系", "BMW 5 Series", False, 4, 2014),
    _Model("奔驰 C级", "Mercedes-Benz C-Class", False, 3, 2015),
    _Model("奔驰 E级", "Mercedes-Benz E-Class", False, 4, 2016),
    _Model("比亚迪 秦PLUS DM-i", "BYD Qin PLUS DM-i", True, 1, 2021),
    _Model("比亚迪 宋PLUS DM-i", "BYD Song PLUS DM-i", True, 1, 2021),
    _Model("比亚迪 汉 EV", "BYD Han EV", True, 2, 2020),
    _Model("特斯拉 Model 3", "Tesla Model 3", True, 3, 2019),
    _Model("特斯拉 Model Y", "Tesla Model Y", True, 3, 2021),
    _Model("蔚来 ES6", "NIO ES6", True, 3, 2019),
    _Model("理想 L7", "Li Auto L7", True, 3, 2023),
    _Model("小鹏 P7", "XPeng P7", True, 2, 2020),
    _Model("五菱 宏光MINIEV", "Wuling Hongguang MINIEV", True, 1, 2020),
    _Model("埃安 AION S", "GAC Aion S", True, 1, 2019),
)

_COMMERCIAL_YUAN = {1: (2000, 3500), 2: (3000, 5200), 3: (4500, 7200), 4: (6000, 9000)}
_VEHICLE_VALUE_YUAN = {1: (70_000, 150_000), 2: (150_000, 260_000), 3: (250_000, 420_000),
                       4: (400_000, 650_000)}
_COMPULSORY_YUAN = (950, 950, 950, 1045, 1100)  # 6 seats or fewer, with a surcharge, 6+ seats
# 交强险 limits: death and disability ¥180,000, medical ¥18,000, property ¥2,000.
_COMPULSORY_COVERAGE = {"death_disability_cents": 18_000_000, "medical_cents": 1_800_000,
                        "property_cents": 200_000}
_PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"

# Claim documents, by stable key: 驾驶证, 行驶证, 事故认定书, 维修发票, 现场照片.
DOCUMENT_KEYS = ("driving_licence", "vehicle_licence", "accident_report", "repair_invoice",
                 "photos")


@dataclass(frozen=True, slots=True)
class _Accident:
    zh: str
    en: str
    third_party: bool


_ACCIDENTS: tuple[_Accident, ...] = (
    _Accident("倒车时刮碰立柱，后保险杠受损", "Hit a pillar while reversing, rear bumper damaged",
              False),
    _Accident("追尾前车，前保险杠及大灯受损", "Rear-ended the car in front, front bumper and "
              "headlight damaged", True),
    _Accident("停放时被剐蹭，左侧车门划痕", "Scraped while parked, scratches on the left doors",
              False),
    _Accident("暴雨涉水，发动机进水", "Drove through flood water in a rainstorm, engine flooded",
              False),
    _Accident("挡风玻璃被飞石击裂", "Windscreen cracked by a flying stone", False),
    _Accident("路口与电动自行车碰擦", "Collided with an e-bike at a junction", True),
    _Accident("变道时与相邻车辆刮擦", "Side-swiped a car while changing lanes", True),
    _Accident("冰雪路面打滑撞上护栏", "Skidded on ice into the guardrail", False),
)

_MAIN_PATH = (
    ClaimStatus.REPORTED,
    ClaimStatus.REGISTERED,
    ClaimStatus.SURVEYED,
    ClaimStatus.LOSS_ASSESSED,
    ClaimStatus.APPROVED,
    ClaimStatus.PAID,
    ClaimStatus.CLOSED,
)
# Hours from the previous step to this one (min, max): the whole path fits in 27 days.
_STEP_HOURS: dict[ClaimStatus, tuple[int, int]] = {
    ClaimStatus.REGISTERED: (1, 24),
    ClaimStatus.SURVEYED: (24, 72),
    ClaimStatus.LOSS_ASSESSED: (24, 168),
    ClaimStatus.APPROVED: (24, 120),
    ClaimStatus.PAID: (24, 72),
    ClaimStatus.CLOSED: (24, 168),
    ClaimStatus.REJECTED: (48, 240),
    ClaimStatus.WITHDRAWN: (2, 96),
}
_EVENT_NOTES: dict[ClaimStatus, tuple[str, str]] = {
    ClaimStatus.REPORTED: ("客户报案", "Claim reported"),
    ClaimStatus.REGISTERED: ("已立案", "Claim registered"),
    ClaimStatus.SURVEYED: ("查勘完成", "Survey completed"),
    ClaimStatus.LOSS_ASSESSED: ("定损完成", "Loss assessed"),
    ClaimStatus.APPROVED: ("核赔通过", "Claim approved"),
    ClaimStatus.PAID: ("赔款已支付", "Indemnity paid"),
    ClaimStatus.CLOSED: ("已结案", "Claim closed"),
    ClaimStatus.REJECTED: ("拒赔：不属于保险责任范围", "Rejected: not covered by the policy"),
    ClaimStatus.WITHDRAWN: ("客户申请撤案", "Withdrawn at the customer's request"),
}
# The status of each claimant's claim, cycled by index so every status appears even in a
# 50-customer demo; closed claims are the most common, as in practice.
_CLAIM_STATUS_CYCLE = (
    ClaimStatus.REPORTED, ClaimStatus.REGISTERED, ClaimStatus.SURVEYED,
    ClaimStatus.LOSS_ASSESSED, ClaimStatus.APPROVED, ClaimStatus.PAID, ClaimStatus.CLOSED,
    ClaimStatus.REJECTED, ClaimStatus.WITHDRAWN, ClaimStatus.CLOSED, ClaimStatus.CLOSED,
    ClaimStatus.SURVEYED,
)
_TERMINAL = frozenset({ClaimStatus.PAID, ClaimStatus.CLOSED, ClaimStatus.REJECTED,
                       ClaimStatus.WITHDRAWN})


# ---------------------------------------------------------------------------------------------
# What is generated (pure values)


@dataclass(frozen=True, slots=True)
class DemoPolicy:
    number: str
    product: Product
    plate: str
    vehicle: str
    coverage: dict[str, int]
    start_date: date
    end_date: date
    premium_cents: int
    status: PolicyStatus
    paid_at: datetime
    renewed_by: str | None = None  # the successor's number
    renewed_at: datetime | None = None
    cancelled_at: datetime | None = None

    @property
    def payment_external_id(self) -> str:
        return f"{PAYMENT_PREFIX}{self.number}"


@dataclass(frozen=True, slots=True)
class DemoClaimEvent:
    external_id: str
    status: ClaimStatus
    occurred_at: datetime
    note: str


@dataclass(frozen=True, slots=True)
class DemoClaim:
    number: str
    policy_number: str
    status: ClaimStatus
    reported_at: datetime
    description: str
    estimated_cents: int | None
    paid_cents: int | None
    required_documents: tuple[str, ...]
    events: tuple[DemoClaimEvent, ...]


@dataclass(frozen=True, slots=True)
class DemoCustomer:
    index: int
    customer_no: str  # the core system's customer number: the demo data's key
    name: str
    phone: str  # a few households share one (see demo_household)
    birthday: date | None
    lunar_birthday: bool
    language: Language
    region_code: str
    timezone: str
    referral_code: str
    referred_by: int | None  # the referrer's index in the same sequence
    email: str
    policies: tuple[DemoPolicy, ...]
    claims: tuple[DemoClaim, ...]

    @property
    def birthday_md(self) -> int | None:
        return None if self.birthday is None else self.birthday.month * 100 + self.birthday.day


@dataclass(slots=True)
class EntityCount:
    created: int = 0
    existing: int = 0

    @property
    def total(self) -> int:
        return self.created + self.existing


@dataclass(slots=True)
class DemoDataReport:
    regions: EntityCount = field(default_factory=EntityCount)
    customers: EntityCount = field(default_factory=EntityCount)
    policies: EntityCount = field(default_factory=EntityCount)
    claims: EntityCount = field(default_factory=EntityCount)
    claim_events: EntityCount = field(default_factory=EntityCount)
    payments: EntityCount = field(default_factory=EntityCount)

    def entities(self) -> tuple[tuple[str, EntityCount], ...]:
        return (
            ("regions", self.regions),
            ("customers", self.customers),
            ("policies", self.policies),
            ("claims", self.claims),
            ("claim events", self.claim_events),
            ("payments", self.payments),
        )

    @property
    def created(self) -> int:
        return sum(count.created for _, count in self.entities())


# ---------------------------------------------------------------------------------------------
# Generation


def _permute(index: int, seed: int, half: int, rounds: tuple[tuple[int, int], ...]) -> int:
    """A bijection of ``[0, half**2)``: affine steps (multipliers coprime to the modulus),
    each followed by adding the high half into the low half (also invertible)."""
    modulus = half * half
    x = index % modulus
    for multiplier, offset in rounds:
        x = (x * multiplier + offset + seed * 7919) % modulus
        high, low = divmod(x, half)
        x = high * half + (low + high) % half
    return x


def demo_phone(index: int, seed: int = DEFAULT_SEED) -> str:
    """The E.164 mobile of customer ``index``: the 8 subscriber digits are a bijection of the
    index, so two customers of one seed never share a number."""
    subscriber = _permute(index, seed, 10**4, ((48_271_417, 12_345_678), (69_069_001, 31_415_926)))
    prefix = _MOBILE_PREFIXES[(index * 7 + seed) % len(_MOBILE_PREFIXES)]
    return f"+86{prefix}{subscriber:08d}"


HOUSEHOLD_EVERY = 50


def demo_household(index: int) -> int:
    """Whose phone customer ``index`` has: their own, or — one in ``HOUSEHOLD_EVERY`` — the
    one before them (a couple sharing a phone; two on a number, so never a flagged shared
    number, see ``storage.shared_phones``)."""
    return index - 1 if index % HOUSEHOLD_EVERY == HOUSEHOLD_EVERY // 2 else index


def demo_customer_no(index: int, seed: int = DEFAULT_SEED) -> str:
    """``D2026-0000123``: the seed, then the index."""
    return f"D{seed}-{index:07d}"


def demo_referral_code(index: int, seed: int = DEFAULT_SEED) -> str:
    """Eight characters of ``REFERRAL_ALPHABET``, a bijection of the index (unique per seed)."""
    x = _permute(index, seed, 2**20, ((0x5DEECE66D, 0xB), (0x9E3779B97F5, 0x2545F491)))
    chars = []
    for _ in range(REFERRAL_LENGTH):  # 32**8 == 2**40 == (2**20)**2
        x, digit = divmod(x, len(REFERRAL_ALPHABET))
        chars.append(REFERRAL_ALPHABET[digit])
    return "".join(chars)


def _rng(seed: int, index: int) -> random.Random:
    # A string seed is hashed with SHA-512: stable across processes and Python builds.
    return random.Random(f"engage-demo:{seed}:{index}")


def _year_shift(day: date, years: int) -> date:
    year = day.year + years
    if day.month == 2 and day.day == 29 and not calendar.isleap(year):
        return date(year, 2, 28)
    return day.replace(year=year)


def _leap_at_or_before(year: int) -> int:
    while not calendar.isleap(year):
        year -= 1
    return year


def _at(day: date, tz: ZoneInfo, rng: random.Random, first_hour: int = 8,
        last_hour: int = 20) -> datetime:
    return datetime.combine(day, time(rng.randint(first_hour, last_hour), rng.randrange(60)),
                            tzinfo=tz)


def _zh_name(rng: random.Random) -> str:
    if rng.random() < 0.01:
        surname = rng.choice(_COMPOUND_SURNAMES)
    else:
        surname = rng.choices(_SURNAMES, cum_weights=_SURNAME_CUM_WEIGHTS)[0]
    pool = _GIVEN_MALE if rng.random() < 0.55 else _GIVEN_FEMALE
    if rng.random() < 0.35:
        return surname + rng.choice(pool)
    return surname + "".join(rng.sample(pool, 2))


def _plate(rng: random.Random, region: DemoRegion, new_energy: bool) -> str:
    prefix = rng.choice(region.plate_prefixes)
    if new_energy:  # small new-energy plates: D (electric) or F (hybrid) and five digits
        body = rng.choice("DF") + f"{rng.randrange(100_000):05d}"
    else:
        letters = rng.choice((0, 0, 1, 1, 1, 2))
        positions = set(rng.sample(range(5), letters))
        body = "".join(rng.choice(_PLATE_LETTERS) if i in positions else str(rng.randrange(10))
                       for i in range(5))
    return f"{prefix}·{body}"


def _birthday(rng: random.Random, index: int, today: date) -> date | None:
    age = rng.randint(22, 68)
    month, day = rng.randint(1, 12), rng.randint(1, 31)
    missing = rng.random() < 0.05
    year = today.year - age
    if index % 25 == 3:  # a few greetings on the demo day
        month, day = today.month, today.day
    elif index % 150 == 7:
        month, day = 2, 29
    elif missing:
        return None
    if (month, day) == (2, 29):
        return date(_leap_at_or_before(year), 2, 29)
    return date(year, month, min(day, calendar.monthrange(year, month)[1]))


def _policy_stem(product: Product, region: DemoRegion, index: int, vehicle: int) -> str:
    """A policy number without its term digit (0 previous, 1 current, 2 next)."""
    code = "PDZA" if product is Product.COMPULSORY else "PDAA"
    return f"{code}{region.code}{index:07d}{vehicle}"


@dataclass(frozen=True, slots=True)
class _Term:
    start: date
    end: date
    key: int  # 0 previous, 1 current, 2 next


def _policies(
    rng: random.Random, index: int, region: DemoRegion, language: Language, today: date,
    *, may_cancel: bool,
) -> tuple[list[DemoPolicy], list[list[_Term]], list[str]]:
    """Every vehicle's policies, with the terms of each vehicle (for claims) and the number of
    the policy a claim would be made on, per vehicle."""
    tz = ZoneInfo(region.timezone)
    policies: list[DemoPolicy] = []
    terms_by_vehicle: list[list[_Term]] = []
    claim_policy: list[str] = []
    vehicles = 2 if rng.random() < 0.15 else 1
    for vehicle in range(vehicles):
        model = rng.choice(_VEHICLES)
        age = rng.randint(0, 9)
        plate = _plate(rng, region, model.new_energy)
        special = vehicle == 0 and index % 6 == 0
        offset = RENEWAL_MARKS[(index // 6) % len(RENEWAL_MARKS)] if special \
            else rng.randint(-45, 320)
        commercial = rng.random() < 0.85
        previous = rng.random() < 0.35
        renew_draw, cancel_draw = rng.random(), rng.random()
        renewed = not special and (
            (0 <= offset <= 45 and renew_draw < 0.25) or (offset < 0 and renew_draw < 0.6))
        cancelled = may_cancel and not special and offset > 45 and cancel_draw < 0.03
        renewal_lead = [rng.randint(1, 20) for _ in range(2)]  # days before the term's end
        payment_lead = rng.randint(0, 5)  # days before the first term's start
        value_low, value_high = _VEHICLE_VALUE_YUAN[model.band]
        value_yuan = rng.randint(value_low, value_high) // 1000 * 1000
        third_party_yuan = rng.choice((1_000_000, 2_000_000, 2_000_000, 3_000_000))
        compulsory_yuan = rng.choice(_COMPULSORY_YUAN)
        premium_low, premium_high = _COMMERCIAL_YUAN[model.band]
        commercial_yuan = rng.randint(premium_low, premium_high)

        current_end = today + timedelta(days=offset)
        current = _Term(_year_shift(current_end, -1) + timedelta(days=1), current_end, 1)
        terms = [current]
        if previous:
            end = current.start - timedelta(days=1)
            terms.insert(0, _Term(_year_shift(end, -1) + timedelta(days=1), end, 0))
        if renewed:
            start = current.end + timedelta(days=1)
            terms.append(_Term(start, _year_shift(start, 1) - timedelta(days=1), 2))
        terms_by_vehicle.append(terms)

        year = min(max(model.since, today.year - age), terms[0].start.year)
        vehicle_text = f"{model.zh if language is Language.ZH_CN else model.en} {year}"
        cancelled_at = None
        if cancelled:  # some day after the start, before today
            days_in_force = (today - current.start).days - 1
            fraction = cancel_draw / 0.03
            cancelled_at = _at(current.start + timedelta(days=1 + int(fraction * days_in_force)),
                               tz, rng)
        renewal_times: dict[int, datetime] = {}
        for term in terms[:-1]:  # each but the newest was renewed by its successor
            day = min(term.end - timedelta(days=renewal_lead[term.key]),
                      today - timedelta(days=1))
            renewal_times[term.key] = _at(day, tz, rng)
        first_paid = _at(terms[0].start - timedelta(days=payment_lead), tz, rng)

        products = [Product.COMPULSORY, Product.COMMERCIAL] if commercial \
            else [Product.COMPULSORY]
        for product in products:
            stem = _policy_stem(product, region, index, vehicle)
            if product is Product.COMPULSORY:
                premium = compulsory_yuan * 100
                coverage = dict(_COMPULSORY_COVERAGE)
            else:
                premium = commercial_yuan * 100
                coverage = {"vehicle_damage_cents": value_yuan * 100,
                            "third_party_cents": third_party_yuan * 100,
                            "driver_cents": 1_000_000, "passenger_per_seat_cents": 1_000_000}
            for position, term in enumerate(terms):
                successor = terms[position + 1] if position + 1 < len(terms) else None
                if successor is not None:
                    status = PolicyStatus.RENEWED
                elif cancelled and term is current:
                    status = PolicyStatus.CANCELLED
                elif term.end < today:
                    status = PolicyStatus.EXPIRED
                else:
                    status = PolicyStatus.ACTIVE
                predecessor = terms[position - 1] if position else None
                policies.append(DemoPolicy(
                    number=f"{stem}{term.key}",
                    product=product,
                    plate=plate,
                    vehicle=vehicle_text,
                    coverage=coverage,
                    start_date=term.start,
                    end_date=term.end,
                    premium_cents=premium,
                    status=status,
                    paid_at=renewal_times[predecessor.key] if predecessor else first_paid,
                    renewed_by=f"{stem}{successor.key}" if successor else None,
                    renewed_at=renewal_times.get(term.key) if successor else None,
                    cancelled_at=cancelled_at if status is PolicyStatus.CANCELLED else None,
                ))
        claim_product = Product.COMMERCIAL if commercial else Product.COMPULSORY
        claim_policy.append(_policy_stem(claim_product, region, index, vehicle))
    return policies, terms_by_vehicle, claim_policy


def _claim(
    rng: random.Random, index: int, k: int, status: ClaimStatus, region: DemoRegion,
    language: Language, today: date, terms: list[_Term], policy_prefix: str,
) -> DemoClaim:
    tz = ZoneInfo(region.timezone)
    if status is ClaimStatus.REJECTED:
        branch = rng.choice((ClaimStatus.REGISTERED, ClaimStatus.SURVEYED,
                             ClaimStatus.LOSS_ASSESSED))
        path = [*_MAIN_PATH[: _MAIN_PATH.index(branch) + 1], status]
    elif status is ClaimStatus.WITHDRAWN:
        branch = rng.choice((ClaimStatus.REPORTED, ClaimStatus.REGISTERED, ClaimStatus.SURVEYED))
        path = [*_MAIN_PATH[: _MAIN_PATH.index(branch) + 1], status]
    else:
        path = list(_MAIN_PATH[: _MAIN_PATH.index(status) + 1])
    gaps = [rng.randint(_STEP_HOURS[step][0] * 60, _STEP_HOURS[step][1] * 60)
            for step in path[1:]]  # minutes
    span_days = sum(gaps) // (24 * 60) + 2
    extra = rng.randint(0, 150) if status in _TERMINAL else rng.randint(0, 5)
    accident = rng.choice(_ACCIDENTS)
    estimate_yuan = rng.randint(80, 6000) * 10
    paid_share = rng.uniform(0.85, 1.0)
    hour, minute = rng.randint(7, 20), rng.randrange(60)

    # The day of the accident: inside a term of the vehicle, and early enough that every
    # step of the timeline is already in the past at the start of `today`.
    latest = today - timedelta(days=span_days)
    day = today - timedelta(days=span_days + extra)
    term = next((t for t in reversed(terms) if t.start <= day <= min(t.end, latest)), None)
    if term is None:
        term = next(t for t in terms if t.key == 1)
        day = min(max(day, term.start), min(term.end, latest))
    reported_at = datetime.combine(day, time(hour, minute), tzinfo=tz)

    number = f"RDAA{region.code}{index:07d}{k}"
    en = language is Language.EN
    events = []
    occurred = reported_at
    for seq, step in enumerate(path):
        if seq:
            occurred += timedelta(minutes=gaps[seq - 1])
        zh_note, en_note = _EVENT_NOTES[step]
        events.append(DemoClaimEvent(f"{number}-E{seq + 1}", step, occurred,
                                     en_note if en else zh_note))
    documents = ["driving_licence", "vehicle_licence", "photos"]
    if accident.third_party:
        documents.append("accident_report")
    documents.append("repair_invoice")
    estimated = estimate_yuan * 100 if ClaimStatus.SURVEYED in path else None
    paid = round(estimate_yuan * paid_share) * 100 if ClaimStatus.PAID in path else None
    return DemoClaim(
        number=number,
        policy_number=f"{policy_prefix}{term.key}",
        status=status,
        reported_at=reported_at,
        description=accident.en if en else accident.zh,
        estimated_cents=estimated,
        paid_cents=paid,
        required_documents=tuple(documents),
        events=tuple(events),
    )


def generate_customer(index: int, *, today: date, seed: int = DEFAULT_SEED) -> DemoCustomer:
    """Customer ``index`` of the seed's sequence, with their policies and claims around
    ``today``."""
    if index < 0:
        raise ValueError("index must not be negative")
    rng = _rng(seed, index)
    region = rng.choices(REGIONS, weights=_REGION_WEIGHTS)[0]
    english = rng.random() < 0.10
    language = Language.EN if english else Language.ZH_CN
    zh_name = _zh_name(rng)
    first, last = rng.choice(_EN_FIRST), rng.choice(_EN_LAST)
    name = f"{first} {last}" if english else zh_name
    email = f"{first.lower()}.{last.lower()}{index}@example.com" if english else ""
    birthday = _birthday(rng, index, today)
    lunar = not english and (index % 30 == 11 or rng.random() < 0.02)
    referral_draw = rng.random()
    referred_by = rng.randrange(index) if index and referral_draw < 0.12 else None

    claim_statuses: list[ClaimStatus] = []
    if index % 5 == 1:
        claim_statuses.append(_CLAIM_STATUS_CYCLE[(index // 5) % len(_CLAIM_STATUS_CYCLE)])
    if index % 20 == 9:
        claim_statuses.append(_CLAIM_STATUS_CYCLE[(index // 20 + 6) % len(_CLAIM_STATUS_CYCLE)])

    policies, vehicle_terms, claim_prefixes = _policies(
        rng, index, region, language, today, may_cancel=not claim_statuses
    )
    vehicles = len(vehicle_terms)
    claims = tuple(
        _claim(rng, index, k, status, region, language, today, vehicle_terms[k % vehicles],
               claim_prefixes[k % vehicles])
        for k, status in enumerate(claim_statuses)
    )
    return DemoCustomer(
        index=index,
        customer_no=demo_customer_no(index, seed),
        name=name,
        phone=demo_phone(demo_household(index), seed),
        birthday=birthday,
        lunar_birthday=lunar,
        language=language,
        region_code=region.code,
        timezone=region.timezone,
        referral_code=demo_referral_code(index, seed),
        referred_by=referred_by,
        email=email,
        policies=tuple(policies),
        claims=claims,
    )


def generate_customers(
    count: int, *, today: date, seed: int = DEFAULT_SEED, start: int = 0
) -> Iterator[DemoCustomer]:
    """Customers ``start`` … ``count - 1`` of the seed's sequence."""
    for index in range(start, count):
        yield generate_customer(index, today=today, seed=seed)


# ---------------------------------------------------------------------------------------------
# Persistence

M = TypeVar("M", bound=Model)
P = TypeVar("P")


# Keys per IN (...) lookup: below SQLite's historical limit of 999 bound parameters.
_LOOKUP_CHUNK = 900


async def _ids(model: type[Model], key: str, values: Sequence[str]) -> dict[str, int]:
    """The ids of the rows whose natural ``key`` is among ``values``."""
    ids: dict[str, int] = {}
    for at in range(0, len(values), _LOOKUP_CHUNK):
        chunk = list(values[at : at + _LOOKUP_CHUNK])
        rows: list[Any] = await model.filter(**{f"{key}__in": chunk}).values_list(key, "id")
        ids.update((row[0], row[1]) for row in rows)
    return ids


async def _insert(model: type[M], key: str, rows: list[M], count: EntityCount) -> dict[str, int]:
    """Insert rows known to be missing; returns the ids of those now present.

    ``ON CONFLICT DO NOTHING``: a row another process inserted meanwhile stands, and is
    counted as created (it is there now and was not before).
    """
    if not rows:
        return {}
    await model.bulk_create(rows, ignore_conflicts=True)
    ids = await _ids(model, key, [getattr(row, key) for row in rows])
    count.created += len(ids)
    return ids


async def _upsert(
    model: type[M], key: str, plans: dict[str, P], build: Callable[[P], M], count: EntityCount
) -> dict[str, int]:
    """Insert a row for each plan whose natural key is not present yet, leaving present rows
    untouched; returns every key's id. Rows are only built for the keys that are missing."""
    present = await _ids(model, key, list(plans))
    count.existing += len(present)
    fresh = [build(plan) for value, plan in plans.items() if value not in present]
    return present | await _insert(model, key, fresh, count)


async def _add(
    model: type[M], key: str, plans: dict[str, P], build: Callable[[P], M], count: EntityCount
) -> None:
    """``_upsert`` for rows nothing refers to (payments, claim events): their natural key is
    their only unique column, so every missing row is present after the insert and no ids
    need reading back."""
    present: set[str] = set()
    values = list(plans)
    for at in range(0, len(values), _LOOKUP_CHUNK):
        chunk = values[at : at + _LOOKUP_CHUNK]
        rows: list[Any] = await model.filter(**{f"{key}__in": chunk}).values_list(key, flat=True)
        present.update(rows)
    count.existing += len(present)
    fresh = [build(plan) for value, plan in plans.items() if value not in present]
    if fresh:
        await model.bulk_create(fresh, ignore_conflicts=True)
    count.created += len(fresh)


async def _seed_regions(report: DemoDataReport) -> dict[str, int]:
    def build(r: DemoRegion) -> Region:
        return Region(code=r.code, name=r.name, name_en=r.name_en, latitude=r.latitude,
                      longitude=r.longitude, timezone=r.timezone)

    # The demo's short codes are the built-in regions' aliases (migration 0015); a database
    # without them gets the demo's own rows, as before built-in regions.
    codes = [r.code for r in REGIONS]
    builtin = dict(await Region.filter(alias__in=codes).values_list("alias", "id"))
    report.regions.existing += len(builtin)
    async with in_transaction():
        rest = {r.code: r for r in REGIONS if r.code not in builtin}
        return builtin | await _upsert(Region, "code", rest, build, report.regions)


async def _seed_batch(
    batch: list[DemoCustomer],
    region_ids: dict[str, int],
    customer_ids: dict[int, int],
    report: DemoDataReport,
) -> None:
    def customer(c: DemoCustomer) -> Customer:
        return Customer(
            customer_no=c.customer_no, name=c.name, phone=c.phone, birthday=c.birthday,
            birthday_md=c.birthday_md,
            lunar_birthday=c.lunar_birthday, language=c.language, timezone=c.timezone,
            region_id=region_ids[c.region_code], referral_code=c.referral_code, email=c.email,
        )

    def claim(plan: tuple[int, int, DemoClaim]) -> Claim:
        customer_id, policy_id, cl = plan
        return Claim(
            number=cl.number, policy_id=policy_id, customer_id=customer_id, status=cl.status,
            reported_at=cl.reported_at, description=cl.description,
            estimated_cents=cl.estimated_cents, paid_cents=cl.paid_cents,
            required_documents=list(cl.required_documents),
        )

    def event(plan: tuple[int, DemoClaimEvent]) -> ClaimEvent:
        claim_id, e = plan
        return ClaimEvent(claim_id=claim_id, status=e.status, occurred_at=e.occurred_at,
                          note=e.note, external_id=e.external_id)

    def payment(plan: tuple[int, int, DemoPolicy]) -> Payment:
        customer_id, policy_id, p = plan
        return Payment(external_id=p.payment_external_id, policy_id=policy_id,
                       customer_id=customer_id, kind=PaymentKind.PREMIUM,
                       amount_cents=p.premium_cents, paid_at=p.paid_at)

    async with in_transaction():
        present = await _ids(Customer, "customer_no", [c.customer_no for c in batch])
        present |= await _adopt_unnumbered(
            [c for c in batch if c.customer_no not in present])
        report.customers.existing += len(present)
        created = await _insert(
            Customer, "customer_no",
            [customer(c) for c in batch if c.customer_no not in present], report.customers,
        )
        owners = [c for c in batch if c.customer_no in present or c.customer_no in created]
        for c in owners:
            customer_ids[c.index] = present.get(c.customer_no) or created[c.customer_no]
        # Link the customers created now to their referrers, who come earlier in the
        # sequence (an earlier batch or earlier in this one). Present customers keep theirs.
        links = [
            Customer(id=created[c.customer_no], referred_by_id=customer_ids[c.referred_by])
            for c in owners
            if c.customer_no in created and c.referred_by in customer_ids
        ]
        if links:
            await Customer.bulk_update(links, fields=["referred_by_id"], batch_size=300)

        policy_ids = await _seed_policies(owners, customer_ids, report)
        claim_plans = {
            cl.number: (customer_ids[c.index], policy_ids[cl.policy_number], cl)
            for c in owners for cl in c.claims if cl.policy_number in policy_ids
        }
        claim_ids = await _upsert(Claim, "number", claim_plans, claim, report.claims)
        event_plans = {
            e.external_id: (claim_ids[cl.number], e)
            for _, _, cl in claim_plans.values() if cl.number in claim_ids for e in cl.events
        }
        await _add(ClaimEvent, "external_id", event_plans, event, report.claim_events)
        payment_plans = {
            p.payment_external_id: (customer_ids[c.index], policy_ids[p.number], p)
            for c in owners for p in c.policies if p.number in policy_ids
        }
        await _add(Payment, "external_id", payment_plans, payment, report.payments)


async def _adopt_unnumbered(batch: list[DemoCustomer]) -> dict[str, int]:
    """Demo customers seeded before they had customer numbers (found by their referral code,
    a bijection of the index like the number, and name) get theirs, instead of being seeded a
    second time; their ids by customer number."""
    if not batch:
        return {}
    found = await Customer.filter(referral_code__in=[c.referral_code for c in batch],
                                  customer_no=None).values_list("id", "referral_code", "name")
    ids = {(str(code), comparable_name(str(name))): int(pk) for pk, code, name in found}
    adopted: dict[str, int] = {}
    for c in batch:
        pk = ids.get((c.referral_code, comparable_name(c.name)))
        if pk is not None:
            await Customer.filter(id=pk).update(customer_no=c.customer_no)
            adopted[c.customer_no] = pk
    return adopted


async def _seed_policies(
    owners: list[DemoCustomer], customer_ids: dict[int, int], report: DemoDataReport
) -> dict[str, int]:
    """Insert newest terms first, so each renewed policy can point at its successor's id."""
    plans = {p.number: (customer_ids[c.index], p) for c in owners for p in c.policies}
    ids = await _ids(Policy, "number", list(plans))
    report.policies.existing += len(ids)
    pending = [number for number in plans if number not in ids]
    while pending:
        ready = [n for n in pending if not plans[n][1].renewed_by or plans[n][1].renewed_by in ids]
        ready = ready or pending  # a successor that could not be written: leave it unlinked
        rows = []
        for number in ready:
            customer_id, p = plans[number]
            rows.append(Policy(
                number=p.number, customer_id=customer_id, product=p.product, plate=p.plate,
                vehicle=p.vehicle, coverage=p.coverage, start_date=p.start_date,
                end_date=p.end_date, premium_cents=p.premium_cents, status=p.status,
                renewed_by_id=ids.get(p.renewed_by) if p.renewed_by else None,
                renewed_at=p.renewed_at, cancelled_at=p.cancelled_at,
            ))
        ids |= await _insert(Policy, "number", rows, report.policies)
        done = set(ready)
        pending = [number for number in pending if number not in done]
    return ids


async def seed_demo_data(
    *, customers: int, today: date, seed: int = DEFAULT_SEED, batch_size: int = 1000
) -> DemoDataReport:
    """Make sure the regions and the first ``customers`` demo customers (with their policies,
    claims, claim events and payments) are in the database; returns what was created and
    what was already there. One transaction per batch of customers."""
    if customers < 0:
        raise ValueError("customers must not be negative")
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    report = DemoDataReport()
    region_ids = await _seed_regions(report)
    customer_ids: dict[int, int] = {}
    for start in range(0, customers, batch_size):
        stop = min(start + batch_size, customers)
        batch = list(generate_customers(stop, today=today, seed=seed, start=start))
        await _seed_batch(batch, region_ids, customer_ids, report)
    log.info("demo data for %s: %d rows created", today, report.created)
    return report
