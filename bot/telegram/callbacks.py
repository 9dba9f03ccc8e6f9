"""Typed callback data. Ids in here come from the user's device and prove nothing: every
handler that receives one re-reads the object filtered by the linked customer."""

from __future__ import annotations

from enum import StrEnum

from aiogram.filters.callback_data import CallbackData


class PolicyAction(StrEnum):
    SHOW = "show"
    RENEWAL = "renew"
    LIST = "list"  # back to the list (id 0)


class PolicyCb(CallbackData, prefix="pol"):
    action: PolicyAction
    id: int


class ClaimAction(StrEnum):
    SHOW = "show"
    UPLOAD = "up"
    LIST = "list"  # back to the list (id 0)


class ClaimCb(CallbackData, prefix="clm"):
    action: ClaimAction
    id: int


class UploadAction(StrEnum):
    CLAIM = "claim"
    KIND = "kind"
    KINDS = "kinds"
    DONE = "done"
    CLAIMS = "claims"  # back to choosing the claim


class UploadCb(CallbackData, prefix="upl"):
    action: UploadAction
    claim: int = 0
    kind: str = ""


class RewardAction(StrEnum):
    ASK = "ask"
    REDEEM = "redeem"
    CANCEL = "cancel"


class RewardCb(CallbackData, prefix="rwd"):
    action: RewardAction
    code: str = ""
    free: bool = False


class VoucherAction(StrEnum):
    ASK = "ask"
    CANCEL = "cancel"
    KEEP = "keep"


class VoucherCb(CallbackData, prefix="vch"):
    action: VoucherAction
    id: int


class SettingsAction(StrEnum):
    TOGGLE = "toggle"
    CHANNEL = "channel"
    LANGUAGE = "lang"
    CITY = "city"
    UNLINK = "unlink"


class SettingsCb(CallbackData, prefix="set"):
    action: SettingsAction
    value: str = ""


class CityCb(CallbackData, prefix="city"):
    region: int


class LanguageCb(CallbackData, prefix="lang"):
    code: str


class UnlinkCb(CallbackData, prefix="unl"):
    confirm: bool


class ComplaintAction(StrEnum):
    CATEGORY = "cat"  # value: the category
    POLICY = "pol"  # id: one of the customer's policies
    CLAIM = "clm"  # id: one of the customer's claims
    NONE = "none"  # about nothing in particular
    CANCEL = "x"


class ComplaintCb(CallbackData, prefix="cmp"):
    action: ComplaintAction
    id: int = 0
    value: str = ""


class SurveyCb(CallbackData, prefix="sv"):
    """A satisfaction score under a survey (``bot.telegram.surveys.survey_keyboard``)."""

    survey: int
    score: int


class ReportAction(StrEnum):
    SAFE = "safe"
    DANGER = "danger"
    GO = "go"  # on after the emergency numbers
    CAR = "car"
    NOW = "now"
    PICK = "pick"
    DAY = "day"
    HOUR = "hour"
    TYPE = "type"
    NO_PARTY = "noparty"
    PHOTOS_DONE = "photos"
    PHONE_OK = "phone"
    SUBMIT = "submit"
    BACK = "back"
    CANCEL = "cancel"


class ReportCb(CallbackData, prefix="rpt"):
    action: ReportAction
    value: str = ""


class RenewalCb(CallbackData, prefix="rnw"):
    """A button under a renewal reminder or lapse rescue: ``answer`` is a
    ``bot.renewal_answers.Answer`` value, or ``why`` with the ``reason`` picked."""

    answer: str
    policy: int
    reason: str = ""
