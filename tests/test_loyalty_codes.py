"""Voucher codes: pure functions, no database."""

from __future__ import annotations

import itertools

from loyalty.codes import ALPHABET, CODE_LENGTH, RANDOM_LENGTH, display, new_code, normalise


def test_codes_carry_at_least_forty_random_bits_from_an_unambiguous_alphabet() -> None:
    assert len(ALPHABET) == 32 and not set("ILOU") & set(ALPHABET)
    assert RANDOM_LENGTH * 5 >= 40
    drawn = {new_code() for _ in range(2000)}
    assert len(drawn) == 2000
    assert all(len(code) == CODE_LENGTH and normalise(code) == code for code in drawn)


def test_typed_forms_normalise_to_the_stored_code() -> None:
    code = new_code()
    assert normalise(display(code)) == code
    assert normalise(" " + display(code).lower() + " ") == code
    confusable = code.replace("0", "O").replace("1", "I")
    assert normalise(confusable) == code


def test_every_single_symbol_error_is_caught() -> None:
    code = new_code()
    for position, wrong in itertools.product(range(CODE_LENGTH), ALPHABET):
        if code[position] == wrong:
            continue
        typo = code[:position] + wrong + code[position + 1:]
        assert normalise(typo) is None, typo


def test_most_neighbour_swaps_are_caught() -> None:
    caught = total = 0
    for _ in range(200):
        code = new_code()
        for i in range(CODE_LENGTH - 1):
            if code[i] == code[i + 1]:
                continue
            swapped = code[:i] + code[i + 1] + code[i] + code[i + 2:]
            total += 1
            caught += normalise(swapped) is None
    assert caught / total > 0.95


def test_wrong_lengths_and_symbols_are_not_codes() -> None:
    code = new_code()
    assert normalise(code[:-1]) is None
    assert normalise(code + "0") is None
    assert normalise(code[:-1] + "U") is None
    assert normalise("") is None
