"""Templates: every shipped template loads; placeholder mistakes stop start-up, not a send."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.texts import TemplateError, Texts


def load(tmp_path: Path, body: str) -> Texts:
    extra = tmp_path / "extra"
    extra.mkdir(exist_ok=True)
    (extra / "custom.toml").write_text(body, encoding="utf-8")
    return Texts.load(extra)


def test_shipped_templates_load_and_render_both_languages() -> None:
    texts = Texts.load()
    params = {"name": "张三", "plate": "沪A12345", "expiry": "2026-12-01", "days_left": 9,
              "policy": "P1"}
    zh = texts.render("renewal_reminder", "zh-CN", params)
    en = texts.render("renewal_reminder", "en", params)
    assert "沪A12345" in zh and "9天" in zh
    assert "9 days left" in en


def test_unknown_language_falls_back_to_chinese() -> None:
    assert Texts.load().render("birthday", "fr", {"name": "Li"}).startswith("Li，生日快乐")


def test_localised_param_values_follow_the_language() -> None:
    texts = Texts.load()
    festival = {"zh-CN": "中秋节", "en": "Mid-Autumn Festival"}
    assert "中秋节快乐" in texts.render("festival", "zh-CN", {"name": "王", "festival": festival})
    assert "Happy Mid-Autumn Festival" in texts.render("festival", "en",
                                                       {"name": "Wang", "festival": festival})


def test_sms_wording_is_used_for_sms_and_is_shorter() -> None:
    texts = Texts.load()
    full = texts.render("birthday", "zh-CN", {"name": "张三"})
    sms = texts.render("birthday", "zh-CN", {"name": "张三"}, sms=True)
    assert sms != full and len(sms) < len(full)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[x]\nparams = ["name"]\n"zh-CN" = "你好"\nen = "Hi {name}"\n',
         "custom.toml [x] zh-CN: missing ['name']"),
        ('[x]\nparams = []\n"zh-CN" = "你好{nmae}"\nen = "Hi"\n',
         "custom.toml [x] zh-CN: unknown placeholder ['nmae']"),
        ('[x]\nparams = ["a"]\n"zh-CN" = "{a}"\n', "custom.toml [x]: missing en text"),
        ('[x]\nparams = ["a"]\n"zh-CN" = "{a}"\nen = "{a}"\nfr = "{a}"\n',
         "custom.toml [x]: unknown entries ['fr']"),
        ('[x]\nparams = ["a"]\n"zh-CN" = "{a.b}"\nen = "{a}"\n', "must be a plain name"),
        ('[x]\nparams = ["a"]\n"zh-CN" = "{a"\nen = "{a}"\n', "custom.toml [x] zh-CN"),
        ('[birthday]\nparams = ["name"]\n"zh-CN" = "{name}"\nen = "{name}"\n',
         "[birthday]: defined twice"),
        ('[x]\nparams = ["a"]\n"zh-CN" = "{a}"\nen = "{a}"\n[x.sms]\nen = "{b}"\n',
         "unknown placeholder ['b']"),
        ('[x\n', "custom.toml"),
        ('[x]\nparams = ["n"]\n"zh-CN" = "{n}"\nen = "{n:# a|# b|# c}"\n', "must be 'one|other'"),
    ],
)
def test_template_mistakes_are_start_up_errors(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(TemplateError) as info:
        load(tmp_path, body)
    assert message in str(info.value)


def test_sms_wording_may_leave_out_a_param(tmp_path: Path) -> None:
    texts = load(tmp_path, '[x]\nparams = ["a", "b"]\n"zh-CN" = "{a}{b}"\nen = "{a} {b}"\n'
                           '[x.sms]\n"zh-CN" = "{a}"\n')
    assert texts.render("x", "zh-CN", {"a": "甲", "b": "乙"}, sms=True) == "甲"


def test_rendering_without_a_declared_param_is_an_error() -> None:
    with pytest.raises(TemplateError, match=r"needs \['name'\]"):
        Texts.load().render("birthday", "zh-CN", {})
    with pytest.raises(TemplateError, match="no template"):
        Texts.load().render("nope", "zh-CN", {})


@pytest.mark.parametrize(("count", "expected"), [(1, "1 file, it is"), (2, "2 files, they are"),
                                                 (0, "0 files, they are"),
                                                 ("1", "1 file, it is")])
def test_a_count_picks_its_noun(tmp_path: Path, count: object, expected: str) -> None:
    texts = load(tmp_path, '[x]\nparams = ["n"]\n"zh-CN" = "{n}个文件"\n'
                           'en = "{n:# file|# files}, {n:it is|they are}"\n')
    assert texts.render("x", "en", {"n": count}) == expected
    assert texts.render("x", "zh-CN", {"n": count}) == f"{count}个文件"


def test_no_english_wording_hedges_a_plural() -> None:
    """"1 day(s)" reads like a form: every count says its noun right."""
    texts = Texts.load()
    hedged = [key for key in texts.keys()
              for wording in [*texts.template(key).text.values(), *texts.template(key).sms.values()]
              if "(s)" in wording or "(es)" in wording]
    assert hedged == []
    params = {"points": 1, "streak": 1}
    assert texts.render("tg_checkin_done", "en", params) == (
        "Checked in: +1 point! That is 1 day in a row.")
