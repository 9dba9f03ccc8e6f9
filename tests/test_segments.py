"""SMS encoding and segment counts (GSM-7 160/153, UCS-2 70/67), pure functions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.delivery.segments import count_segments, sms_encoding, sms_length

CHINESE = "保"


@pytest.mark.parametrize(
    ("length", "segments"),
    [(0, 1), (1, 1), (160, 1), (161, 2), (306, 2), (307, 3), (459, 3), (460, 4)],
)
def test_gsm7_ascii_segment_boundaries(length: int, segments: int) -> None:
    text = "a" * length
    assert sms_encoding(text) == "GSM-7"
    assert count_segments(text) == segments


@pytest.mark.parametrize(
    ("length", "segments"), [(1, 1), (70, 1), (71, 2), (134, 2), (135, 3), (201, 3), (202, 4)]
)
def test_ucs2_chinese_segment_boundaries(length: int, segments: int) -> None:
    text = CHINESE * length
    assert sms_encoding(text) == "UCS-2"
    assert count_segments(text) == segments


def test_empty_text_is_billed_as_one_segment() -> None:
    assert count_segments("") == 1
    assert sms_length("") == 0
    assert sms_encoding("") == "GSM-7"


def test_one_chinese_character_makes_ascii_text_ucs2() -> None:
    text = "Your policy renews on 2026-05-01" + CHINESE
    assert sms_encoding(text) == "UCS-2"
    assert sms_length(text) == len(text)
    # 100 ASCII characters fit one GSM-7 message, but not one UCS-2 message.
    assert count_segments("a" * 100) == 1
    assert count_segments("a" * 99 + CHINESE) == 2


def test_signature_brackets_make_text_ucs2() -> None:
    assert sms_encoding("【安行保险】") == "UCS-2"


def test_euro_and_extension_characters_count_two_septets() -> None:
    assert sms_encoding("€") == "GSM-7"
    assert sms_length("€") == 2
    assert sms_length("^{}\\[~]|\f") == 18
    assert sms_length("a€b") == 4
    assert count_segments("€" * 80) == 1  # 160 septets
    assert count_segments("€" * 81) == 2  # 162 septets


def test_gsm_basic_accented_letters_count_one_septet() -> None:
    text = "Ça coûte 5£ à Zürich"  # û is not GSM
    assert sms_encoding(text) == "UCS-2"
    assert sms_encoding("Ça coute 5£ à Zürich") == "GSM-7"
    assert sms_length("£¥èéÄÖÑÜßΔ") == 10


def test_extension_character_at_part_boundary_moves_to_next_part() -> None:
    # 152 septets then '€': the escape pair would straddle parts 1 and 2, so it starts part 2.
    # Part 1: 152, part 2: 2 + 151 = 153, part 3: 1 -> three parts, although the total
    # (152 + 2 + 152 = 306 septets) would fit two parts if the pair could be split.
    text = "a" * 152 + "€" + "a" * 152
    assert sms_length(text) == 306
    assert count_segments(text) == 3
    # Without the boundary clash the same length fits two parts.
    assert count_segments("€" + "a" * 304) == 2


def test_surrogate_pair_at_part_boundary_moves_to_next_part() -> None:
    emoji = "🚗"
    assert sms_length(emoji) == 2
    assert sms_length(CHINESE * 3 + emoji) == 5
    # 66 units then an emoji (2 units): part 1 holds 66, the pair starts part 2.
    text = CHINESE * 66 + emoji + CHINESE * 66
    assert sms_length(text) == 134
    assert count_segments(text) == 3
    assert count_segments(emoji + CHINESE * 132) == 2


def test_seventy_units_with_an_emoji_is_one_segment() -> None:
    assert count_segments(CHINESE * 68 + "🚗") == 1
    assert count_segments(CHINESE * 69 + "🚗") == 2


GSM_BASIC_CHARS = st.sampled_from(list("abcXYZ019 .,!?@£$_\n"))
GSM_WITH_EXTENSION = st.sampled_from(list("ab 1€^{}[]~|\\"))
CJK = st.sampled_from(list("保险续期理赔到账车险您好，。"))
CJK_AND_EMOJI = st.sampled_from([*"保险续期a1 ", "🚗", "🎉", "😀"])


@pytest.mark.parametrize(
    "alphabet", [GSM_BASIC_CHARS, GSM_WITH_EXTENSION, CJK, CJK_AND_EMOJI],
    ids=["gsm-basic", "gsm-extension", "cjk", "cjk-emoji"],
)
def test_segments_never_decrease_as_text_grows(alphabet: st.SearchStrategy[str]) -> None:
    @given(st.lists(alphabet, max_size=400))
    def check(chars: list[str]) -> None:
        text = "".join(chars)
        counts = [count_segments(text[:k]) for k in range(len(text) + 1)]
        assert counts == sorted(counts)
        expected_single = 160 if sms_encoding(text) == "GSM-7" else 70
        assert (counts[-1] == 1) == (sms_length(text) <= expected_single)

    check()


@given(st.text(max_size=300))
def test_segment_count_agrees_with_length_bounds(text: str) -> None:
    segments = count_segments(text)
    length = sms_length(text)
    per_part = 153 if sms_encoding(text) == "GSM-7" else 67
    if segments > 1:
        # Every full part is filled to within one unit (a pair that moved whole).
        assert (segments - 1) * (per_part - 1) < length <= segments * per_part
