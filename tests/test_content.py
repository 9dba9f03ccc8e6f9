"""Content checks: Twilio's China rules for SMS, Telegram's length limit."""

from __future__ import annotations

import pytest

from bot.delivery.content import ContentRefused, check_sms, check_telegram, telegram_length

CN = "+8613800138000"
US = "+14155550100"
HK = "+85291234567"


def refusal(to: str, body: str, category: str = "reminder") -> str | None:
    try:
        check_sms(to, body, category=category)
    except ContentRefused as exc:
        return exc.reason
    return None


@pytest.mark.parametrize(
    "body",
    [
        "【安行保险】续保请点击 https://example.com/renew?id=1",
        "详情见 http://anxing.cn",
        "HTTPS://EXAMPLE.COM",
        "打开 weixin://dl/business 查看",
        "访问www.anxing.com.cn办理",
        "访问 WWW.ANXING.COM",
        "续保链接 example.com",
        "续保链接：anxing.com.cn/r/8",
        "短链 t.cn/A6xYz 点击查看",
        "点击 url.cn/5abc 续保",
        "查看 dwz.cn/abc",
        "京东 3.cn/10-abc 领券",
        "see bit.ly/3xYz",
        "m.tb.cn/h.5abc",
        "suo.im/abc",
        "联系 service@anxing.com",
        "访问example。com 不算，但 example．com 算",
        "go.to/abc",
        "upload at 10.0.0.1/claims",
        "link: http://192.168.1.1:8080",
        "anxing.com.",
    ],
)
def test_url_in_sms_to_cn_is_refused(body: str) -> None:
    assert refusal(CN, body) == "url_in_sms_cn"


@pytest.mark.parametrize(
    "body",
    [
        "【安行保险】您的保单将于2026-05-01到期，保费¥1,200.00，请于08:30-17:30致电95500。",
        "费率上调3.5%，保额50.5万元",
        "Premium CNY 3,456.78 due 2026.05.01",
        "保单号 PDAA2024.310000.123 已续保",
        "保单号 No.12345 已生效",
        "App v2.0.1 已更新，请升级",
        "Dear Mr.Smith, see you at 8.30am",
        "Dear Mr.Li, your claim is paid.",
        "e.g. bring your ID, i.e. the original. Open 9a.m.-5p.m.",
        "We will call you soon.to renew, reply 1",  # missing space, English word TLD
        "附件请命名为 行驶证.jpg 或 claim.pdf",
        "积分1.5倍，车损险8.5折",
        "回T退订",
        "",
    ],
)
def test_sms_to_cn_without_url_passes(body: str) -> None:
    assert refusal(CN, body) is None


def test_marketing_sms_to_cn_is_refused_even_without_url() -> None:
    assert refusal(CN, "【安行保险】新春车险8折，回T退订", category="marketing") == (
        "marketing_sms_cn"
    )


@pytest.mark.parametrize("category", ["service", "reminder", "care"])
def test_non_marketing_categories_to_cn_pass(category: str) -> None:
    assert refusal(CN, "【安行保险】您的理赔已到账", category=category) is None


@pytest.mark.parametrize("to", [US, HK, "+886912345678"])
def test_numbers_outside_mainland_may_get_urls_and_marketing(to: str) -> None:
    assert refusal(to, "Renew at https://example.com/renew", category="marketing") is None


def test_0086_prefix_counts_as_mainland() -> None:
    assert refusal("008613800138000", "see t.cn/abc") == "url_in_sms_cn"


def test_refusal_names_the_offending_text_but_not_the_number() -> None:
    with pytest.raises(ContentRefused) as caught:
        check_sms(CN, "续保 t.cn/A6xYz", category="reminder")
    assert caught.value.reason == "url_in_sms_cn"
    assert caught.value.detail == "t.cn/A6xYz"
    assert "13800138000" not in str(caught.value)


def test_telegram_text_within_limit_is_returned_unchanged() -> None:
    text = "保" * 4096
    assert check_telegram(text) is text


def test_telegram_text_over_4096_chars_is_refused_not_truncated() -> None:
    with pytest.raises(ContentRefused) as caught:
        check_telegram("a" * 4097)
    assert caught.value.reason == "telegram_too_long"


def test_telegram_length_counts_utf16_units_so_emoji_count_two() -> None:
    assert telegram_length("🚗") == 2
    assert check_telegram("🚗" * 2048)
    with pytest.raises(ContentRefused, match="telegram_too_long"):
        check_telegram("🚗" * 2048 + "a")  # 2,049 characters, 4,097 units


@pytest.mark.parametrize("text", ["", "   \n "])
def test_empty_telegram_text_is_refused(text: str) -> None:
    with pytest.raises(ContentRefused) as caught:
        check_telegram(text)
    assert caught.value.reason == "telegram_empty"
