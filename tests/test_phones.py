import pytest

from storage.phones import InvalidPhone, mask_phone, normalise_phone


@pytest.mark.parametrize("raw", ["13800138000", "138 0013 8000", "+86 138-0013-8000",
                                 "008613800138000", "+8613800138000"])
def test_mainland_mobile_forms_normalise_to_e164(raw: str) -> None:
    assert normalise_phone(raw) == "+8613800138000"


def test_foreign_number_keeps_its_country() -> None:
    assert normalise_phone("+44 20 7946 0958") == "+442079460958"


@pytest.mark.parametrize("raw", ["", "hello", "12345", "+86 138"])
def test_invalid_numbers_are_refused_without_echoing_them(raw: str) -> None:
    with pytest.raises(InvalidPhone) as info:
        normalise_phone(raw)
    assert "13800" not in str(info.value)


def test_mask_keeps_country_and_last_four() -> None:
    assert mask_phone("+8613800138000") == "+86*******8000"
    assert mask_phone("+15005550006") == "+1******0006"
