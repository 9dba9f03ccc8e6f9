"""The inbound SMS hot path's shortcuts agree with what they replace: the signature check with
twilio's ``RequestValidator.validate`` (which it no longer calls), the sender's number with
``normalise_phone`` (which it calls only when the shortcut is not sure)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from bot.sms.conversations import SenderNumbers
from bot.sms.signature import TwilioSignature
from storage.phones import InvalidPhone, normalise_phone

TOKEN = "fedcba9876543210" * 2
URLS = [
    "https://engage.example.com/sms/inbound",
    "https://engage.example.com:443/sms/inbound",
    "https://engage.example.com:8443/sms/inbound?x=1&y=%2B86",
    "http://engage.example.com/sms/status",
    "http://engage.example.com:80/sms/status?",
    "https://engage.example.com/sms/inbound;p?q=",
]
# Form values as aiohttp hands them over: any text, Chinese and emoji included.
PARAMS = st.dictionaries(st.sampled_from(["MessageSid", "From", "To", "Body", "NumMedia",
                                          "OptOutType", "MediaUrl0", "a", "A", ""]),
                         st.text(max_size=30), max_size=8)


@given(url=st.sampled_from(URLS), params=PARAMS, signed_for=st.sampled_from(URLS),
       token=st.sampled_from([TOKEN, "x" * 32]), tamper=st.sampled_from(["", "a", "="]))
def test_signature_check_agrees_with_twilios_validator(
    url: str, params: dict[str, str], signed_for: str, token: str, tamper: str
) -> None:
    validator = RequestValidator(TOKEN)
    # signed with or without the port, for this URL or another, with the token or not
    for variant in {signed_for, signed_for.replace(":443", "").replace(":80/", "/"),
                    signed_for.replace(".com/", ".com:443/")}:
        signature = RequestValidator(token).compute_signature(variant, params) + tamper
        ours = TwilioSignature(TOKEN, "https://unused.example.com").valid(url, params,
                                                                           signature)
        assert ours == validator.validate(url, params, signature)


@pytest.mark.parametrize("signature", ["", "not base64", "\udcff\udcfe", "é" * 28])
def test_signatures_that_are_not_twilios_are_refused(signature: str) -> None:
    params = {"MessageSid": "SM1", "Body": "HELP"}
    assert not TwilioSignature(TOKEN, "https://e.example.com").valid(URLS[0], params,
                                                                       signature)
    assert not TwilioSignature("", "https://e.example.com").valid(
        URLS[0], params, RequestValidator(TOKEN).compute_signature(URLS[0], params))


def e164_or_as_given(raw: str, region: str) -> str:
    """What the sender's number was before the shortcut: ``normalise_phone``, or the text
    stripped when it is not a valid number."""
    try:
        return normalise_phone(raw, region)
    except InvalidPhone:
        return raw.strip()


@pytest.mark.parametrize("region", ["CN", "cn", "US", "XX"])
def test_sender_numbers_agree_with_normalise_phone_for_every_mobile_prefix(
    region: str,
) -> None:
    numbers = SenderNumbers(region)
    rnd = random.Random(20261205)
    for prefix in range(10_000, 20_000, 1 if region == "CN" else 37):
        number = f"{prefix}{rnd.randrange(1_000_000):06d}"
        for raw in (f"+86{number}", number, f"0086{number}", f"+86{number[:-1]}",
                    f" +86{number}\n", f"+86 {number[:3]}-{number[3:7]}-{number[7:]}",
                    f"+860{number}", f"+1{number[1:]}"):
            assert numbers(raw) == e164_or_as_given(raw, region), (raw, region)
    for raw in ("+15005550006", "+442079460958", "95588", "ENGAGE", "", "+86 138"):
        assert numbers(raw) == e164_or_as_given(raw, region), (raw, region)
