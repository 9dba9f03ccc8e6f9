"""One identity per person: the core system's customer number as the key, a phone as a contact
point several customers may share, people never merged, shared phones flagged; what the
customer chose in a channel wins over an import. Through ``engage import`` and ``import_csv``
on a real database (both backends)."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from storage.choices import TELEGRAM, record_choice
from storage.importer import ImportReport, import_csv
from storage.models import Customer, Language, Policy, SharedPhone
from storage.shared_phones import flags, release
from tests.factories import on_database

NOW = datetime(2026, 6, 1, 4, 0, tzinfo=UTC)
LATER = datetime(2026, 6, 2, 4, 0, tzinfo=UTC)
SHARED = "13800138008"
SHARED_E164 = "+8613800138008"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


async def run(kind: str, path: Path, now: datetime = NOW) -> tuple[ImportReport, list[str]]:
    out = io.StringIO()
    report = await import_csv(kind, path, out=out, now=now)
    return report, out.getvalue().splitlines()


def counts(report: ImportReport) -> tuple[int, int, int, int]:
    return report.created, report.updated, report.unchanged, report.rejected


# --- through the engage command, both backends ---------------------------------------------

def test_three_people_on_one_phone_are_never_merged(
        engage_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without customer numbers, the second and third person are refused with the reason and
    the way out; with them, all three land and the number is flagged as shared."""
    plain = write(tmp_path, "plain.csv", "phone,name,birthday\n"
                  f"{SHARED},张三,1980-01-01\n{SHARED},李四,1985-02-02\n{SHARED},王五,\n")
    assert main(["import", "customers", str(plain), "-q"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "line 3: phone: belongs to another customer (张*) — add customer_no to import both",
        "line 4: phone: belongs to another customer (张*) — add customer_no to import both",
        "customers: 1 accepted (1 created, 0 updated, 0 unchanged), 2 rejected",
    ]
    numbered = write(tmp_path, "numbered.csv", "customer_no,phone,name,birthday\n"
                     f"C001,{SHARED},张三,1980-01-01\nC002,{SHARED},李四,1985-02-02\n"
                     f"C003,{SHARED},王五,\n")
    assert main(["import", "customers", str(numbered), "-q"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "customers: 3 accepted (2 created, 1 updated, 0 unchanged), 0 rejected"]
    assert main(["import", "customers", str(numbered), "-q"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "customers: 3 accepted (0 created, 0 updated, 3 unchanged), 0 rejected"]

    async def state() -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        people = await Customer.filter(phone=SHARED_E164).order_by("customer_no").values_list(
            "customer_no", "name", "birthday")
        flagged = await SharedPhone.all().values_list("phone", "customers", "released_at")
        return list(people), list(flagged)

    people, flagged = on_database(engage_url, state)
    assert people == [("C001", "张三", date(1980, 1, 1)), ("C002", "李四", date(1985, 2, 2)),
                      ("C003", "王五", None)]
    assert flagged == [(SHARED_E164, 3, None)]


def test_policies_of_people_sharing_a_phone_need_the_customer_number(
        engage_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    customers = write(tmp_path, "c.csv", "customer_no,phone,name\n"
                      f"C001,{SHARED},张三\nC002,{SHARED},李四\nC009,13900139009,赵六\n")
    assert main(["import", "customers", str(customers), "-q"]) == 0
    capsys.readouterr()
    head = "number,product,plate,start_date,end_date,premium"
    policies = write(tmp_path, "p.csv", f"{head},phone,customer_no\n"
                     f"P1,commercial,沪A00001,2026-01-01,2026-12-31,1000,{SHARED},C002\n"
                     f"P2,commercial,沪A00002,2026-01-01,2026-12-31,1000,{SHARED},\n"
                     f"P3,commercial,沪A00003,2026-01-01,2026-12-31,1000,13900139009,\n"
                     f"P4,commercial,沪A00004,2026-01-01,2026-12-31,1000,,C404\n")
    assert main(["import", "policies", str(policies), "-q"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "line 3: phone: +86*******8008 belongs to 2 customers — add customer_no to say whose "
        "policy it is",
        "line 5: customer_no: no customer with customer_no C404",
        "policies: 2 accepted (2 created, 0 updated, 0 unchanged), 2 rejected",
    ]
    without_owner = write(tmp_path, "q.csv", f"{head}\nP5,commercial,A,2026-01-01,2026-12-31,1\n")
    assert main(["import", "policies", str(without_owner), "-q"]) == 2
    assert "missing column(s) phone (or customer_no)" in capsys.readouterr().err

    async def owners() -> list[tuple[Any, ...]]:
        return list(await Policy.all().order_by("number").values_list(
            "number", "customer__customer_no"))

    assert on_database(engage_url, owners) == [("P1", "C002"), ("P3", "C009")]


# --- identity rules -----------------------------------------------------------------------


async def test_a_changed_name_with_the_same_birthday_updates_with_a_warning(
        tmp_path: Path, db: str) -> None:
    await run("customers", write(tmp_path, "a.csv", f"phone,name,birthday\n{SHARED},张三,"
                                 "1980-01-01\n"))
    _report, out = await run("customers", write(
        tmp_path, "b.csv", f"phone,name,birthday\n{SHARED},张叁,1980-01-01\n"), LATER)
    assert out == ["line 2: name: was 张* with the same phone and birthday (updated)",
                   "customers: 1 accepted (0 created, 1 updated, 0 unchanged), 0 rejected, "
                   "1 warning"]
    assert await Customer.filter(phone=SHARED_E164).values_list("name", flat=True) == ["张叁"]


async def test_customers_imported_by_phone_take_their_number_and_others_join_the_phone(
        tmp_path: Path, db: str) -> None:
    await run("customers", write(tmp_path, "a.csv", f"phone,name\n{SHARED},张三\n"))
    first = await Customer.get(phone=SHARED_E164)
    report, _ = await run("customers", write(
        tmp_path, "b.csv", f"customer_no,phone,name\nC001,{SHARED},张三\nC002,{SHARED},李四\n"))
    assert counts(report) == (1, 1, 0, 0)
    assert await Customer.get(customer_no="C001") == first
    # a row without a number still finds its person among the two
    report, _out = await run("customers", write(
        tmp_path, "c.csv", f"phone,name,email\n{SHARED},李四,li@example.com\n"))
    assert counts(report) == (0, 1, 0, 0)
    assert (await Customer.get(customer_no="C002")).email == "li@example.com"


async def test_a_customer_number_moves_its_customer_to_a_new_phone_and_unflags_the_old(
        tmp_path: Path, db: str) -> None:
    rows = "".join(f"C00{n},{SHARED},客户{n}\n" for n in range(1, 4))
    await run("customers", write(tmp_path, "a.csv", "customer_no,phone,name\n" + rows))
    assert await SharedPhone.filter(phone=SHARED_E164).values_list("customers", flat=True) == [3]
    report, _ = await run("customers", write(
        tmp_path, "b.csv", "customer_no,phone,name\nC003,13900139003,客户3\n"), LATER)
    assert counts(report) == (0, 1, 0, 0)
    assert (await Customer.get(customer_no="C003")).phone == "+8613900139003"
    assert not await SharedPhone.exists()


async def test_a_released_number_is_flagged_again_when_someone_new_joins_it(
        tmp_path: Path, db: str) -> None:
    rows = "".join(f"C00{n},{SHARED},客户{n}\n" for n in range(1, 4))
    await run("customers", write(tmp_path, "a.csv", "customer_no,phone,name\n" + rows))
    [flag] = await flags()
    assert (flag.phone, [name for _, name in flag.customers], flag.held) == (
        "+86*******8008", ["客**", "客**", "客**"], True)
    await release(flag.id, "王经理", LATER)
    [flag] = await flags()
    assert (flag.held, flag.released_by) == (False, "王经理")
    await run("customers", write(tmp_path, "b.csv", f"customer_no,phone,name\nC004,{SHARED},"
                                 "客户4\n"), LATER)
    [flag] = await flags()
    assert (flag.held, len(flag.customers)) == (True, 4)


async def test_referrers_on_a_shared_phone_are_named_by_customer_number(
        tmp_path: Path, db: str) -> None:
    text = ("customer_no,phone,name,referred_by,referred_by_no\n"
            f"C001,{SHARED},张三,,\nC002,{SHARED},李四,,\n"
            "C003,13900139003,王五,13800138008,\n"
            "C004,13900139004,赵六,,C002\n"
            "C005,13900139005,钱七,,C006\n"
            "C006,13900139006,孙八,,C001\n"
            "C007,13900139007,周九,,C006\n")
    report, out = await run("customers", write(tmp_path, "c.csv", text))
    assert out[:2] == [
        "line 4: referred_by: +86*******8008 belongs to 2 customers — give the referrer's "
        "customer number in referred_by_no",
        "line 6: referred_by_no: no customer with customer_no C006 (imported already or "
        "earlier in the file)",
    ]
    assert counts(report) == (5, 0, 0, 2)
    ids = dict(await Customer.all().values_list("customer_no", "id"))
    referred = dict(await Customer.all().values_list("customer_no", "referred_by_id"))
    assert referred == {"C001": None, "C002": None, "C004": ids["C002"], "C006": ids["C001"],
                        "C007": ids["C006"]}


# --- choices made in a channel win over the import ----------------------------------------


async def test_an_import_never_overwrites_what_the_customer_chose(
        tmp_path: Path, db: str) -> None:
    await run("customers", write(tmp_path, "a.csv", "phone,name,language,timezone\n"
                                 f"{SHARED},张三,zh-CN,Asia/Shanghai\n13900139001,李四,zh-CN,\n"))
    zhang = await Customer.get(phone=SHARED_E164)
    assert (zhang.language_set_by, zhang.language_set_at) == ("import", NOW)
    chose = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    await record_choice(zhang.id, source=TELEGRAM, now=chose, language=Language.EN,
                        timezone="America/New_York")

    nightly = write(tmp_path, "b.csv", "phone,name,language,timezone,email\n"
                    f"{SHARED},张三,zh-CN,Asia/Shanghai,zhang@example.com\n"
                    "13900139001,李四,en,Asia/Tokyo,\n")
    report, out = await run("customers", nightly, LATER)
    assert out == ["customers: 2 accepted (0 created, 2 updated, 0 unchanged), 0 rejected; "
                   "the customer's own choices kept in 1 row"]
    zhang = await Customer.get(id=zhang.id)
    assert (zhang.language, zhang.timezone, zhang.email) == (
        Language.EN, "America/New_York", "zhang@example.com")
    assert (zhang.language_set_by, zhang.language_set_at) == (TELEGRAM, chose)
    li = await Customer.get(phone="+8613900139001")
    assert (li.language, li.timezone, li.timezone_set_by, li.timezone_set_at) == (
        Language.EN, "Asia/Tokyo", "import", LATER)
    # once they choose again, that choice wins in turn
    await record_choice(zhang.id, source=TELEGRAM, now=LATER, language=Language.ZH_CN)
    report, out = await run("customers", write(
        tmp_path, "c.csv", f"phone,name,language\n{SHARED},张三,en\n"), LATER)
    assert (await Customer.get(id=zhang.id)).language == Language.ZH_CN
    assert report.kept == 1
