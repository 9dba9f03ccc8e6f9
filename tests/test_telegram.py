"""The Telegram bot end to end: real Updates through the real aiogram Dispatcher, replies
through the real Bot to the fake Bot API, and the database before and after.

Commands in both languages, policies and claims, ownership of everything a callback names,
update idempotency, block/unblock, and the error router.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from bot.telegram.commands import COMMANDS
from bot.telegram.i18n import Translator
from loyalty import ledger
from storage.loyalty_models import EntryKind
from storage.models import (
    Claim,
    ClaimEvent,
    ClaimStatus,
    Customer,
    Document,
    DocumentStatus,
    Policy,
    PolicyStatus,
    ProcessedUpdate,
    Task,
    TelegramAccount,
)
from tests import factories as f
from tests.test_telegram_support import Rig, User, button_data

pytest_plugins = ["tests.test_telegram_support"]

LANGS = ["zh-CN", "en"]


async def _claim(owner: Customer, policy: Policy, *, number: str | None = None,
                 status: ClaimStatus = ClaimStatus.SURVEYED, **extra: Any) -> Claim:
    claim = await Claim.create(
        number=number or f"RDAA31{policy.id:06d}{owner.id:03d}", policy=policy, customer=owner,
        status=status, reported_at=datetime(2026, 11, 1, 2, 30, tzinfo=UTC),
        description="倒车刮碰", required_documents=["driving_licence", "photos"], **extra)
    steps = [ClaimStatus.REPORTED, ClaimStatus.REGISTERED, ClaimStatus.SURVEYED]
    for i, step in enumerate(steps[: steps.index(status) + 1] if status in steps else steps):
        await ClaimEvent.create(claim=claim, status=step,
                                occurred_at=datetime(2026, 11, 1 + i, 3, 0, tzinfo=UTC))
    return claim


def _expected(command: str, t: Translator, owner: Customer, policy: Policy,
              claim: Claim) -> str:
    """The start of the answer each command gives a linked customer (from the texts, so
    the test proves the language, not a copy of the wording)."""
    company = "Anxing Insurance" if t.lang == "en" else "安行保险"
    return {
        "start": t("tg_welcome_back", name=owner.name, company=company),
        "policies": t("tg_policies_header"),
        "claims": t("tg_claims_header"),
        "claim": t("tg_claim_detail", number=claim.number, plate=policy.plate,
                   status=t("tg_claim_status_surveyed"),
                   reported=t.moment(claim.reported_at, owner.timezone),
                   description=claim.description),
        "upload": t("tg_upload_choose_claim"),
        "report": t("tg_report_safety"),
        "points": t("tg_points_summary", balance=120,
                    tier="Standard" if t.lang == "en" else "普卡"),
        "rewards": t("tg_rewards_header", balance=120),
        "vouchers": t("tg_vouchers_empty"),
        "checkin": t("tg_checkin_done", points=5, streak=1),
        "invite": t("tg_invite", link=f"https://t.me/engage_test_bot?start=ref_{owner.referral_code}",
                    count=0),
        "settings": t("tg_settings", language=t("tg_language_name_en" if t.lang == "en"
                                                else "tg_language_name_zh"),
                      care=t("tg_on"), alert=t("tg_on"), reminder=t("tg_on"),
                      marketing=t("tg_off"),
                      channel=t("tg_channel_telegram")),
        "language": t("tg_language_choose"),
        "help": t("tg_help", company=company, hotline="95500"),
        "unlink": t("tg_unlink_confirm"),
        # Saturday noon: a person answers from Monday morning
        "agent": t("tg_desk_handoff_closed",
                   when="Mon 23 Nov 09:00" if t.lang == "en" else "11月23日 09:00"),
        "complaint": t("tg_complaint_choose_category"),
    }[command]


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("command", COMMANDS)
async def test_every_command_answers_a_linked_customer_in_their_language(
    tg: Rig, command: str, lang: str
) -> None:
    owner, user = await tg.linked(language=lang)
    policy = await f.policy(owner)
    claim = await _claim(owner, policy)
    await ledger.credit(owner.id, 120, kind=EntryKind.ADJUSTMENT, key=f"seed:{owner.id}",
                        now=tg.clock() - timedelta(days=2), settings=tg.settings.loyalty,
                        reason="seed", operator="test")
    text = f"/{command} {claim.number}" if command == "claim" else f"/{command}"
    await tg.send(user, text)
    expected = _expected(command, tg.t(lang), owner, policy, claim)
    assert tg.last_text(user.id).startswith(expected)
    assert await ProcessedUpdate.all().count() == 1


MENU = {"tg_menu_policies": "tg_policies_header", "tg_menu_claims": "tg_claims_empty",
        "tg_menu_vouchers": "tg_vouchers_empty", "tg_menu_help": "tg_help"}


@pytest.mark.parametrize("button", list(MENU))
async def test_menu_buttons_work_in_either_language(tg: Rig, button: str) -> None:
    owner, user = await tg.linked(language="zh-CN")
    await f.policy(owner)
    for lang in LANGS:  # a menu still on screen from before a language switch works too
        await tg.send(user, tg.t(lang)(button))
        first_line = tg.last_text(user.id).splitlines()[0]
        assert first_line == tg.t("zh-CN")(MENU[button], hotline="95500",
                                          company="安行保险").splitlines()[0]


LINKED_ONLY = ["policies", "claims", "claim X1", "upload", "points", "rewards", "vouchers",
               "checkin", "invite", "settings", "unlink"]


@pytest.mark.parametrize("command", LINKED_ONLY)
async def test_unlinked_user_reaching_a_linked_feature_is_asked_to_link_first(
    tg: Rig, command: str
) -> None:
    user = User(4242, "en")
    await tg.send(user, f"/{command}")
    reply = tg.last(user.id)
    assert reply["text"] == tg.t("en")("tg_link_first")
    assert reply["reply_markup"]["keyboard"][0][0]["request_contact"] is True
    assert await Task.all().count() == 0


@pytest.mark.parametrize(("code", "lang"), [("en-US", "en"), ("zh-hant", "zh-CN"),
                                            ("zh", "zh-CN"), ("de", "en")])
async def test_first_language_guess_comes_from_telegram_language_code(
    tg: Rig, code: str, lang: str
) -> None:
    user = User(777, code)
    await tg.send(user, "/start")
    company = "Anxing Insurance" if lang == "en" else "安行保险"
    assert tg.last_text(user.id) == tg.t(lang)("tg_welcome_unlinked", company=company)
    assert (await TelegramAccount.get(telegram_user_id=777)).customer_id is None


async def test_policy_list_shows_days_to_expiry_and_highlights_the_last_30_days(tg: Rig) -> None:
    owner, user = await tg.linked(language="en")
    soon = await f.policy(owner, end=date(2026, 12, 11), plate="沪A11111")  # 20 days left
    later = await f.policy(owner, end=date(2027, 6, 9), plate="沪A22222")
    await f.policy(owner, end=date(2025, 12, 31), plate="沪A33333",
                   status=PolicyStatus.RENEWED)  # history: not listed
    await tg.send(user, "/policies")
    lines = tg.last_text(user.id).splitlines()
    assert lines[1] == (f"⚠️ 沪A11111 Commercial {soon.number} (active), expires 2026-12-11 — "
                        "only 20 days left, please renew")
    assert lines[2] == (f"• 沪A22222 Commercial {later.number} (active), expires 2027-06-09, "
                        "200 days left")
    assert len(lines) == 3
    assert button_data(tg.last(user.id)) == [f"pol:show:{soon.id}", f"pol:show:{later.id}"]


async def test_policy_detail_and_a_renewal_call_back_make_one_operator_task(tg: Rig) -> None:
    owner, user = await tg.linked()
    policy = await f.policy(owner, coverage={"third_party_cents": 200_000_000},
                            vehicle="大众 朗逸")
    await tg.press(user, f"pol:show:{policy.id}")
    detail = tg.last(user.id)
    assert "第三者责任险：¥2,000,000.00" in detail["text"]
    assert "保费：¥3,500.00" in detail["text"]
    assert button_data(detail) == [f"pol:renew:{policy.id}", "pol:list:0"]
    await tg.press(user, f"pol:renew:{policy.id}")
    assert tg.last_text(user.id) == tg.t("zh-CN")("tg_renewal_requested", plate=policy.plate)
    await tg.press(user, f"pol:renew:{policy.id}")  # a second tap: no second task
    assert tg.last_text(user.id) == tg.t("zh-CN")("tg_renewal_already", plate=policy.plate)
    [task] = await Task.all()
    assert (task.kind, task.source, task.customer_id, task.policy_id) == (
        "renewal_callback", "telegram", owner.id, policy.id)


async def test_forged_policy_callback_is_not_found(tg: Rig,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    _, user = await tg.linked()
    other = await f.customer()
    theirs = await f.policy(other)
    with caplog.at_level(logging.WARNING, logger="bot.telegram.policies"):
        await tg.press(user, f"pol:renew:{theirs.id}")
    assert tg.last_text(user.id) == tg.t("zh-CN")("tg_not_found")
    assert await Task.all().count() == 0
    assert f"policy {theirs.id}" in caplog.text and other.phone not in caplog.text


@pytest.mark.parametrize("lang", LANGS)
async def test_claim_detail_has_localised_timeline_and_documents_still_needed(
    tg: Rig, lang: str
) -> None:
    owner, user = await tg.linked(language=lang)
    claim = await _claim(owner, await f.policy(owner))
    await tg.press(user, f"clm:show:{claim.id}")
    reply = tg.last(user.id)
    t = tg.t(lang)
    text = reply["text"]
    for status in ("reported", "registered", "surveyed"):
        assert t(f"tg_claim_status_{status}") in text
    names = t("tg_list_separator").join([t("tg_doc_driving_licence"), t("tg_doc_photos")])
    assert text.endswith(t("tg_claim_docs_needed", documents=names))
    assert button_data(reply) == [f"clm:up:{claim.id}", "clm:list:0"]


async def test_claim_detail_orders_the_timeline_and_counts_only_documents_not_rejected(
    tg: Rig,
) -> None:
    owner, user = await tg.linked(language="en")
    claim = await _claim(owner, await f.policy(owner), status=ClaimStatus.REGISTERED)
    # Recorded late, but it happened between the two events already there.
    await ClaimEvent.create(claim=claim, status=ClaimStatus.SURVEYED, note="late entry",
                            occurred_at=datetime(2026, 11, 1, 12, 0, tzinfo=UTC))
    for n, (kind, status) in enumerate([("photos", DocumentStatus.REJECTED),
                                         ("driving_licence", DocumentStatus.RECEIVED)]):
        await Document.create(claim=claim, customer=owner, channel="telegram",
                              mime_type="image/jpeg", size=10, sha256=f"{n:064d}",
                              storage_key=f"k{n}", original_name=f"{kind}:IMG_{n}.jpg",
                              status=status)
    await tg.press(user, f"clm:show:{claim.id}")
    text = tg.last_text(user.id)
    t = tg.t("en")
    timeline = text[text.index(t("tg_claim_timeline_header")):]
    order = [timeline.index(t(f"tg_claim_status_{s}")) for s in ("reported", "surveyed",
                                                                  "registered")]
    assert order == sorted(order)
    assert text.endswith(t("tg_claim_docs_needed", documents=t("tg_doc_photos")))


async def test_forged_claim_callback_for_another_customer_is_not_found_and_logged(
    tg: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    owner, user = await tg.linked()
    other = await f.customer(phone="+8613912345678")
    theirs = await _claim(other, await f.policy(other), number="RDAA9999999")
    with caplog.at_level(logging.WARNING, logger="bot.telegram.claims"):
        await tg.press(user, f"clm:show:{theirs.id}")
    assert tg.last_text(user.id) == tg.t("zh-CN")("tg_not_found")
    assert "RDAA9999999" not in tg.last_text(user.id)
    assert f"claim {theirs.id}" in caplog.text and f"customer {owner.id}" in caplog.text
    assert "13912345678" not in caplog.text


async def test_free_text_with_own_claim_number_answers_its_status_and_no_one_elses(
    tg: Rig
) -> None:
    owner, user = await tg.linked(language="en")
    mine = await _claim(owner, await f.policy(owner), number="RDAA3101000011")
    other = await f.customer()
    await _claim(other, await f.policy(other), number="RDAA3101000022")
    await tg.send(user, "hi, how is rdaa3101000011 going?")
    assert tg.last_text(user.id).startswith(f"Claim: {mine.number}\n")
    await tg.send(user, "and RDAA3101000022?")
    assert tg.last_text(user.id) == tg.t("en")("tg_unknown_text")
    await tg.send(user, "/claim RDAA3101000022")
    assert tg.last_text(user.id) == tg.t("en")("tg_claim_number_unknown",
                                                number="RDAA3101000022")


async def test_the_same_update_twice_is_handled_once(tg: Rig) -> None:
    owner, user = await tg.linked()
    policy = await f.policy(owner)
    update = tg.update(tg.callback(user, f"pol:renew:{policy.id}"))
    assert await tg.feed.feed(update) is True
    assert await tg.feed.feed(update) is False
    assert len(tg.sent(user.id)) == 1
    assert await Task.all().count() == 1
    assert await ProcessedUpdate.filter(update_id=update.update_id).count() == 1


async def test_an_update_whose_answer_cannot_be_sent_stays_unprocessed_for_redelivery(
    tg: Rig
) -> None:
    owner, user = await tg.linked()
    await f.policy(owner)
    update = tg.update(tg.message(user, "/policies"))
    tg.fake.fail_next("sendMessage", 500, times=2)  # the answer, then the apology
    with pytest.raises(Exception, match="Internal Server Error"):
        await tg.feed.feed(update)
    assert not await ProcessedUpdate.exists(update_id=update.update_id)
    assert await tg.feed.feed(update) is True  # Telegram's redelivery
    assert tg.last_text(user.id).startswith(tg.t("zh-CN")("tg_policies_header"))


async def test_an_unexpected_error_gets_a_kind_answer_and_is_logged(
    tg: Rig, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _, user = await tg.linked(language="en")

    async def broken(customer_id: int, **_: object) -> object:
        raise RuntimeError("ledger unreachable")

    monkeypatch.setattr("bot.telegram.points.points_overview", broken)
    with caplog.at_level(logging.ERROR, logger="bot.telegram.errors"):
        update = await tg.send(user, "/points")
    assert tg.last_text(user.id) == tg.t("en")("tg_error_generic", hotline="95500")
    assert "RuntimeError" in caplog.text
    assert await ProcessedUpdate.exists(update_id=update.update_id)


async def test_blocking_and_unblocking_the_bot_updates_the_account(tg: Rig) -> None:
    owner, user = await tg.linked()
    await tg.feed.feed(tg.update(tg.member(user, "member", "kicked")))
    account = await TelegramAccount.get(telegram_user_id=user.id)
    assert account.blocked_at == tg.clock() and account.customer_id == owner.id
    tg.clock.advance(days=1)
    await tg.feed.feed(tg.update(tg.member(user, "kicked", "member")))
    await account.refresh_from_db()
    assert account.blocked_at is None
    assert tg.sent() == []  # nothing is said to someone who blocked us


async def test_unknown_text_points_to_the_menu(tg: Rig) -> None:
    _, user = await tg.linked(language="en")
    await tg.send(user, "what's the weather?")
    reply = tg.last(user.id)
    assert reply["text"] == tg.t("en")("tg_unknown_text")
    assert reply["reply_markup"]["keyboard"][1][0]["text"] == "📄 Policies"  # under 报案


async def test_policies_of_a_customer_are_only_their_own(tg: Rig) -> None:
    owner, user = await tg.linked()
    await f.policy(owner, plate="沪A00001")
    await f.policy(await f.customer(), plate="沪B99999")
    await tg.send(user, "/policies")
    assert "沪B99999" not in tg.last_text(user.id)
    assert await Policy.all().count() == 2


async def test_messages_in_a_group_get_no_answer(tg: Rig) -> None:
    _, user = await tg.linked()
    group = {"id": -100123, "type": "supergroup", "title": "Family"}
    await tg.send(user, "/policies", chat=group)
    await tg.send(user, "hello", chat=group)
    assert tg.sent() == []


def test_every_text_key_built_from_a_value_exists() -> None:
    """Keys like ``tg_claim_status_{status}`` are built at run time: a new status, entry kind
    or command without its text would fail here, not in front of a customer."""
    from bot.texts import Texts
    from storage.demo_data import DOCUMENT_KEYS
    from storage.loyalty_models import VoucherStatus
    from storage.models import Product

    texts = Texts.load()
    families = {
        "tg_cmd_": COMMANDS,
        "tg_claim_status_": [s.value for s in ClaimStatus],
        "tg_policy_status_": [s.value for s in PolicyStatus],
        "tg_product_": [p.value for p in Product],
        "tg_entry_": [k.value for k in EntryKind],
        "tg_voucher_status_": [v.value for v in VoucherStatus],
        "tg_doc_": [*DOCUMENT_KEYS, "other"],
        "tg_category_": ["care", "alert", "reminder", "marketing"],
        "tg_channel_": ["telegram", "sms"],
    }
    missing = [prefix + value for prefix, values in families.items() for value in values
               if prefix + value not in texts]
    assert missing == []


def test_no_filter_or_handler_runs_in_a_thread() -> None:
    """aiogram runs a synchronous filter or handler (a bare ``F.…`` magic filter is one)
    through ``asyncio.to_thread``: a thread-pool round trip per check of every update. Every
    one in our dispatcher must be awaitable; wrap magic filters in ``filters.Magic``."""
    from aiogram import Router
    from aiogram.dispatcher.event.handler import CallableObject
    from aiogram.filters.logic import _AndFilter, _InvertFilter, _OrFilter

    from bot.settings import Settings
    from bot.telegram.runtime import build_dispatcher
    from bot.texts import Texts

    def threaded(obj: CallableObject) -> list[str]:
        found = [] if obj.awaitable else [repr(obj.callback)]
        inner = obj.callback
        if isinstance(inner, _OrFilter | _AndFilter):
            found += [name for target in inner.targets for name in threaded(target)]
        elif isinstance(inner, _InvertFilter):
            found += threaded(inner.target)
        return found

    def walk(router: Router) -> list[str]:
        found: list[str] = []
        for event, observer in router.observers.items():
            for item in observer._handler.filters or []:
                found += [f"{router.name} {event} filter {n}" for n in threaded(item)]
            for handler in observer.handlers:
                found += [f"{router.name} {event} handler {n}" for n in threaded(handler)]
                for item in handler.filters or []:
                    found += [f"{router.name} {event} filter {n}" for n in threaded(item)]
        for sub in router.sub_routers:
            found += walk(sub)
        return found

    dp = build_dispatcher(Settings(), Texts.load(), clock=lambda: datetime.now(UTC))
    assert walk(dp) == []


MALFORMED = ["xyz", "rwd:redeem", "clm:show:not-a-number", "pol:show:", "vch:cancel:abc",
             "upl:kind:x:y:z:w", "lang", "set:nope", "unl:maybe", ""]


@pytest.mark.parametrize("linked", [True, False])
async def test_every_button_press_is_answered_even_stale_or_malformed(
    tg: Rig, linked: bool
) -> None:
    """A callback no handler understands gets a short "expired" alert (the spinner stops);
    one that names something not the customer's is answered too, with "not found"."""
    if linked:
        _, user = await tg.linked(language="en")
    else:
        user = User(8123, "en")
        await tg.send(user, "/start")
    presses = [(data, await tg.press(user, data)) for data in MALFORMED]
    answers = {r.params["callback_query_id"]: r.params
               for r in tg.fake.requests_for("answerCallbackQuery")}
    for data, update in presses:
        assert update.callback_query is not None
        answer = answers.get(update.callback_query.id)
        assert answer is not None, f"{data!r} was never answered"
        assert answer.get("text") == tg.t("en")("tg_button_expired"), data
        assert answer.get("show_alert") is True
    if linked:
        stale = await tg.press(user, "clm:show:999999")  # well-formed, not theirs (or gone)
        assert stale.callback_query is not None
        assert stale.callback_query.id in {
            r.params["callback_query_id"] for r in tg.fake.requests_for("answerCallbackQuery")}
        assert tg.last_text(user.id) == tg.t("en")("tg_not_found")


async def test_language_with_an_argument_switches_at_once(tg: Rig) -> None:
    owner, user = await tg.linked()
    await tg.send(user, "/language en")
    reply = tg.last(user.id)
    assert reply["text"] == tg.t("en")("tg_language_set")
    assert reply["reply_markup"]["keyboard"][0][0]["text"] == tg.t("en")("tg_menu_report")
    await owner.refresh_from_db()
    assert owner.language == "en"
    await tg.send(user, "/language 中文")
    assert tg.last_text(user.id) == tg.t("zh-CN")("tg_language_set")
    await owner.refresh_from_db()
    assert owner.language == "zh-CN"
    await tg.send(user, "/language klingon")  # not a language we speak: the picker
    assert tg.last_text(user.id) == tg.t("zh-CN")("tg_language_choose")
    assert button_data(tg.last(user.id)) == ["lang:zh-CN", "lang:en"]


async def test_language_argument_works_before_linking_too(tg: Rig) -> None:
    user = User(8124, "zh-hans")
    await tg.send(user, "/language English")
    reply = tg.last(user.id)
    assert reply["text"] == tg.t("en")("tg_language_set")
    assert reply["reply_markup"]["keyboard"][0][0]["request_contact"] is True
    assert (await TelegramAccount.get(telegram_user_id=user.id)).language_code == "en"


async def test_back_buttons_lead_from_a_detail_to_its_list(tg: Rig) -> None:
    owner, user = await tg.linked(language="en")
    policy = await f.policy(owner)
    claim = await _claim(owner, policy)
    t = tg.t("en")
    await tg.press(user, f"clm:show:{claim.id}")
    await tg.press(user, "clm:list:0")
    assert tg.last_text(user.id).startswith(t("tg_claims_header"))
    assert button_data(tg.last(user.id)) == [f"clm:show:{claim.id}"]
    await tg.press(user, f"pol:show:{policy.id}")
    await tg.press(user, "pol:list:0")
    assert tg.last_text(user.id).startswith(t("tg_policies_header"))
    assert policy.number in tg.last_text(user.id)
    # The document-type menu goes back to choosing the claim.
    await tg.press(user, f"clm:up:{claim.id}")
    assert tg.last_text(user.id) == t("tg_upload_choose_kind", claim=claim.number)
    assert button_data(tg.last(user.id))[-1] == "upl:claims:0:"
    await tg.press(user, "upl:claims:0:")
    assert tg.last_text(user.id) == t("tg_upload_choose_claim")
    assert button_data(tg.last(user.id)) == [f"upl:claim:{claim.id}:"]
