"""The SMS keyword parser on its own: every keyword in every form, claim numbers, Twilio's
OptOutType, and what must *not* be read as a keyword."""

from __future__ import annotations

import pytest

from bot.sms.keywords import KEYWORDS, Command, Parsed, normalise, parse

EXPECTED = {
    "STOP": Command.STOP, "UNSUBSCRIBE": Command.STOP, "END": Command.STOP,
    "QUIT": Command.STOP, "CANCEL": Command.STOP, "T": Command.STOP, "TD": Command.STOP,
    "退订": Command.STOP,
    "START": Command.START, "UNSTOP": Command.START, "订阅": Command.START,
    "HELP": Command.HELP, "帮助": Command.HELP,
    "POLICY": Command.POLICY, "保单": Command.POLICY,
    "CLAIM": Command.CLAIM, "理赔": Command.CLAIM,
    "POINTS": Command.POINTS, "积分": Command.POINTS,
    "CHECKIN": Command.CHECKIN, "签到": Command.CHECKIN,
    "REDEEM": Command.REDEEM, "兑换": Command.REDEEM,
    "VOUCHERS": Command.VOUCHERS, "券": Command.VOUCHERS,
}


def full_width(text: str) -> str:
    """ASCII letters and digits as their full-width forms (what Chinese IMEs often send)."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def forms(word: str) -> list[tuple[str, str]]:
    return [
        ("upper", word.upper()),
        ("lower", word.lower()),
        ("title", word.capitalize()),
        ("full_width", full_width(word)),
        ("full_width_lower", full_width(word.lower())),
        ("padded", f"  {word.lower()} \n"),
        ("ideographic_space_and_punct", f"\u3000{full_width(word)}！"),
        ("chinese_full_stop", f"{word}。"),
    ]


CASES = [(word, name, text) for word in EXPECTED for name, text in forms(word)]


def test_table_covers_every_keyword_the_issue_names() -> None:
    for word, command in EXPECTED.items():
        assert KEYWORDS[word] is command
    assert "CHECK IN" in KEYWORDS  # the two-word spelling people type


@pytest.mark.parametrize(("word", "form", "text"), CASES,
                         ids=[f"{w}-{n}" for w, n, _ in CASES])
def test_every_keyword_in_every_form(word: str, form: str, text: str) -> None:
    assert parse(text) == Parsed(EXPECTED[word])


def test_normalise_folds_full_width_and_trims() -> None:
    assert normalise("\u3000ＳｔＯｐ！ ") == "STOP"
    assert normalise(" 理赔　ｒｄａａ３１００１ ") == "理赔 RDAA31001"


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("CLAIM RDAA3100000001", "RDAA3100000001"),
        ("claim rdaa3100000001", "RDAA3100000001"),
        ("Claim: C-2026-7", "C-2026-7"),
        ("claim #C1", "C1"),
        ("理赔RDAA3100000001", "RDAA3100000001"),
        ("理赔 RDAA3100000001", "RDAA3100000001"),
        ("理赔：ＲＤＡＡ３１００", "RDAA3100"),
        ("ＣＬＡＩＭ　ｃ７", "C7"),
    ],
)
def test_claim_takes_a_number(text: str, number: str) -> None:
    assert parse(text) == Parsed(Command.CLAIM, number)


@pytest.mark.parametrize(
    "text",
    [
        "", "   ", "hello", "please stop", "stop it", "STOPS", "CLAIMS", "claimRDAA1",
        "TT", "退订了吗", "我要理赔怎么办", "理赔 我的车被撞了", "POINTS?!?x", "保单查询",
    ],
)
def test_anything_else_is_the_menu(text: str) -> None:
    assert parse(text) == Parsed(Command.MENU)


@pytest.mark.parametrize(
    ("opt_out_type", "body", "command"),
    [
        ("STOP", "停止发送", Command.STOP),
        ("stop", "ARRET", Command.STOP),
        ("START", "继续", Command.START),
        ("HELP", "INFO", Command.HELP),
        ("STOP", "START", Command.STOP),  # Twilio's verdict wins over the words
    ],
)
def test_twilio_opt_out_type_decides_when_present(opt_out_type: str, body: str,
                                                  command: Command) -> None:
    assert parse(body, opt_out_type) == Parsed(command, from_twilio=True)


def test_unknown_opt_out_type_falls_back_to_the_words() -> None:
    assert parse("积分", "SOMETHING") == Parsed(Command.POINTS)
