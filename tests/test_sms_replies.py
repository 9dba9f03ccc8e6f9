"""SMS reply wordings: signed like every outbound SMS, one segment with realistic values —
UCS-2 in Chinese, GSM-7 in English abroad — and the policy list cut to two segments."""

from __future__ import annotations

from datetime import date

import pytest

from bot.delivery.segments import GSM7_SINGLE, UCS2_SINGLE, count_segments, sms_encoding, sms_length
from bot.settings import Settings
from bot.sms.replies import Replies
from bot.texts import Texts
from storage.models import ClaimStatus

CLAIM = "RDAA3100000001234"  # the demo data's longest claim numbers: 17 characters
PLATE = "沪A·D12345"  # new-energy plates are the longest


MAINLAND = "+8613800138000"
ABROAD = "+85291234567"  # Hong Kong: not the mainland


@pytest.fixture(scope="module")
def replies() -> Replies:
    return Replies(Texts.load(), Settings().sms)


def every_reply(r: Replies, lang: str) -> dict[str, str]:
    """Every reply in ``lang`` to the number ``r`` is bound to."""
    categories = Settings().sms.opt_out_categories
    tier = {"zh-CN": "钻石", "en": "Diamond"}
    too_large = r.rejection(lang, "too_large", max_bytes=20 * 1024 * 1024)
    out = {
        "unknown_sender": r.unknown_sender(r.to),
        "menu": r.menu(lang),
        "shared_held": r.shared_held(lang),
        "shared_personal": r.shared_personal(lang),
        "help": r.help(lang),
        "opted_out": r.opted_out(lang, categories),
        "opted_in": r.opted_in(lang, categories),
        "policy_one": r.policies(lang, [(PLATE, date(2026, 12, 31))]),
        "policy_none": r.policies(lang, []),
        "claim_not_found": r.claim_not_found(lang, CLAIM),
        "no_claims": r.no_claims(lang),
        "claim_with_documents": r.claim(lang, CLAIM, "loss_assessed", attached=3),
        "points": r.points(lang, 1_234_567, tier),
        "checkin_done": r.checked_in(lang, awarded=True, points=5, bonus=0, streak=365,
                                     balance=1_234_567),
        "checkin_bonus": r.checked_in(lang, awarded=True, points=5, bonus=20, streak=365,
                                      balance=1_234_567),
        "checkin_already": r.checked_in(lang, awarded=False, points=0, bonus=0, streak=365,
                                        balance=1_234_567),
        "media_attached": r.documents(lang, stored=10, claim=CLAIM, rejected_reason=None),
        "media_attached_some_rejected": r.documents(lang, stored=9, claim=CLAIM,
                                                    rejected_reason=too_large),
        "media_unattached": r.documents(lang, stored=10, claim=None, rejected_reason=None),
        "media_unattached_some_rejected": r.documents(lang, stored=9, claim=None,
                                                      rejected_reason=too_large),
    }
    for status in ClaimStatus:
        out[f"claim_{status.value}"] = r.claim(lang, CLAIM, status.value)
    for reason in ("too_large", "unsupported_type", "image_too_large", "corrupt", "empty",
                   "download_failed"):
        out[f"rejected_{reason}"] = r.documents(
            lang, stored=0, claim=None,
            rejected_reason=r.rejection(lang, reason, max_bytes=20 * 1024 * 1024))
    return out


KEYS = list(every_reply(Replies(Texts.load(), Settings().sms, MAINLAND), "zh-CN"))


@pytest.mark.parametrize("key", KEYS)
def test_every_chinese_reply_is_one_segment_with_the_signature(replies: Replies,
                                                               key: str) -> None:
    text = every_reply(replies.to_number(MAINLAND), "zh-CN")[key]
    assert text.startswith("【安行保险】")
    assert count_segments(text) == 1, f"{sms_length(text)} > {UCS2_SINGLE}: {text}"


@pytest.mark.parametrize("key", KEYS)
def test_every_english_reply_abroad_is_one_segment_with_the_english_signature(
    replies: Replies, key: str
) -> None:
    text = every_reply(replies.to_number(ABROAD), "en")[key]
    assert text.startswith("[Anxing Insurance] ")
    assert count_segments(text) == 1, f"{sms_encoding(text)} {sms_length(text)}: {text}"
    if key not in ("policy_one",):  # a plate is Chinese: that one reply is UCS-2
        assert sms_encoding(text) == "GSM-7" and sms_length(text) <= GSM7_SINGLE, text


# (a mainland number with no customer behind it is answered in Chinese)
@pytest.mark.parametrize("key", [key for key in KEYS if key != "unknown_sender"])
def test_english_replies_to_mainland_numbers_keep_the_registered_signature(
    replies: Replies, key: str
) -> None:
    """Mainland rules want the Chinese signature on every SMS to a +86 number, which makes
    an English one UCS-2: at most two segments."""
    text = every_reply(replies.to_number(MAINLAND), "en")[key]
    assert text.startswith("【安行保险】 ")
    assert count_segments(text) <= 2, text


def test_every_claim_status_has_a_name_in_both_languages(replies: Replies) -> None:
    names = {(lang, replies.status_name(lang, s.value)) for s in ClaimStatus
             for lang in ("zh-CN", "en")}
    assert len(names) == 2 * len(ClaimStatus)
    assert replies.status_name("zh-CN", "paid") == "已赔付"


def test_policies_list_plate_and_expiry_once_per_car(replies: Replies) -> None:
    both_products = [("沪A12345", date(2026, 12, 31)), ("沪A12345", date(2026, 12, 31)),
                     ("沪B67890", date(2027, 3, 1))]
    assert replies.to_number(MAINLAND).policies("zh-CN", both_products) == (
        "【安行保险】您的有效保单：沪A12345至2026-12-31；沪B67890至2027-03-01")
    assert replies.to_number(ABROAD).policies("en", both_products) == (
        "[Anxing Insurance] Your active policies: 沪A12345 until 2026-12-31; "
        "沪B67890 until 2027-03-01")


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_many_policies_are_cut_to_two_segments_with_the_total(replies: Replies,
                                                              lang: str) -> None:
    fleet = [(f"粤B·D{n:05d}", date(2027, 1, n + 1)) for n in range(12)]
    text = replies.to_number(MAINLAND).policies(lang, fleet)
    assert count_segments(text) == 2
    assert "12" in text.rsplit(fleet[0][0], 1)[-1]  # "等共12份" / "(12 in all)"
    shown = [plate for plate, _ in fleet if plate in text]
    assert shown == [plate for plate, _ in fleet[: len(shown)]] and 1 < len(shown) < 12


def test_unknown_sender_reads_chinese_on_mainland_numbers_and_english_elsewhere(
    replies: Replies,
) -> None:
    assert "95500" in replies.unknown_sender("+8613800138000")
    assert replies.unknown_sender("+8613800138000").startswith("【安行保险】未查到")
    assert replies.unknown_sender("+442079460958").startswith("[Anxing Insurance] We could not")
