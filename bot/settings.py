"""The one ``Settings`` object: built-in defaults < TOML file < ``ENGAGE_<SECTION>__<KEY>``.

Each package owns the model of its own section (``storage.config``, ``scheduler.config``,
``loyalty.config``); this module composes them and knows where configuration comes from.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from loyalty.config import LoyaltySettings
from scheduler.config import (
    CareSettings,
    HolidaySettings,
    OfficeHoursSettings,
    RenewalSettings,
    RetentionSettings,
    ScheduleSettings,
    WeatherSettings,
)
from storage.config import DatabaseSettings

Category = Literal["service", "reminder", "care", "alert", "marketing"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TelegramSettings(_Section):
    token: SecretStr = SecretStr("")
    mode: Literal["polling", "webhook"] = "polling"
    webhook_url: str = ""
    webhook_secret: SecretStr = SecretStr("")
    api_base: str = "https://api.telegram.org"
    rate_per_second: float = Field(default=25.0, gt=0)
    per_chat_interval_seconds: float = Field(default=1.0, ge=0)
    relink_sms_code: bool = Field(
        default=True,
        description="re-linking a phone linked to another Telegram account needs an SMS code "
        "(only when SMS is configured)",
    )
    link_attempts_per_hour: int = Field(default=5, ge=1, le=100)

    @model_validator(mode="after")
    def _webhook_needs_url_and_secret(self) -> TelegramSettings:
        if self.mode == "webhook":
            if not self.webhook_url:
                raise ValueError("webhook_url: required when mode = 'webhook'")
            if not self.webhook_secret.get_secret_value():
                raise ValueError("webhook_secret: required when mode = 'webhook'")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.token.get_secret_value())


class TwilioSettings(_Section):
    account_sid: str = ""
    auth_token: SecretStr = SecretStr("")
    from_number: str = ""
    messaging_service_sid: str = ""
    api_base: str = "https://api.twilio.com"
    public_base_url: str = Field(
        default="",
        description="the URL Twilio calls us at; signatures are checked against it",
    )
    delete_media: bool = True
    segments_per_second: float = Field(default=10.0, gt=0)
    max_concurrent_requests: int = Field(default=8, ge=1, le=100)

    @property
    def enabled(self) -> bool:
        return bool(self.account_sid and self.auth_token.get_secret_value())


class SmsSettings(_Section):
    signature: str = Field(default="【安行保险】", description="in front of every SMS in "
                           "Chinese, and of every SMS to a mainland (+86) number")
    signature_en: str = Field(default="[Anxing Insurance]", description="in front of English "
                              "SMS to numbers outside the mainland (keeps them GSM-7)")
    opt_out_hint_zh: str = "回T退订"
    opt_out_hint_en: str = "Reply STOP to opt out"
    opt_out_categories: list[Category] = ["marketing", "care", "alert", "reminder"]
    hotline: str = "95500"
    media_timeout_seconds: float = Field(
        default=5.0, gt=0, le=10,
        description="per MMS media download or delete; keeps the webhook answer well inside "
        "Twilio's 15 s",
    )
    media_delete_retry_seconds: float = Field(
        default=60.0, gt=0,
        description="wait before retrying a failed MMS media delete; doubles per attempt, "
        "at most 6 h",
    )
    media_delete_max_attempts: int = Field(default=8, ge=1, le=30)
    media_delete_max_age_hours: float = Field(
        default=72.0, gt=0, description="a media delete still failing this long after the MMS "
        "is given up (logged as an error)",
    )
    media_sweep_interval_seconds: float = Field(
        default=300.0, gt=0, description="how often pending media deletes are retried",
    )


class DeliverySettings(_Section):
    batch_size: int = Field(default=200, ge=1, le=5000)
    lease_seconds: int = Field(default=120, ge=5)
    poll_interval_seconds: float = Field(default=1.0, gt=0)
    pipelines: int = Field(default=2, ge=1, le=16, description="dispatch loops per process")
    max_attempts: int = Field(default=5, ge=1, le=50)
    backoff_base_seconds: float = Field(default=30.0, gt=0)
    weekly_cap: int = Field(default=3, ge=0, description="care + marketing per 7 days")
    quiet_hours_exempt: list[Category] = ["service"]
    marketing_requires_consent_prefixes: list[str] = ["+86"]
    shutdown_seconds: float = Field(
        default=5.0, ge=1, le=120,
        description="SIGTERM to exit: unsent claimed messages return to the queue at once, "
        "sends on the wire get the rest of this to finish",
    )


class UploadSettings(_Section):
    directory: Path = Path("data/uploads")
    max_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    max_pixels: int = Field(default=40_000_000, ge=10_000)


class WebSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    public_base_url: str = ""


class OperatorSettings(_Section):
    session_hours: int = Field(default=12, ge=1, le=720)
    default_language: Literal["zh-CN", "en"] = "zh-CN"
    campaign_batch_ids: int = Field(
        default=50_000, ge=1, le=1_000_000,
        description="customer ids covered by one campaign enqueue transaction",
    )
    campaign_poll_seconds: float = Field(default=2.0, gt=0, le=60)
    sms_price_per_segment: float = Field(default=0.05, ge=0, description="for preview costs")
    sms_currency: str = "USD"


class QuickReply(_Section):
    title: str = Field(min_length=1, max_length=40)
    text: str = Field(min_length=1, max_length=1000)


class ConversationSettings(_Section):
    """The conversations desk: hand-off to a person, the first-response clock, quick replies."""

    first_response_minutes: int = Field(
        default=5, ge=1, le=1440,
        description="a person's first reply is due within this much office time after a "
        "hand-off; later ones are highlighted and counted",
    )
    misunderstood_window_minutes: int = Field(
        default=30, ge=1, le=1440,
        description="two free texts the bot does not understand this close together hand "
        "the conversation to a person",
    )
    poll_seconds: float = Field(default=5.0, ge=1, le=60,
                                description="how often the console inbox looks for news")
    quick_replies: list[QuickReply] = [
        QuickReply(title="问候", text="您好，我是客服，很高兴为您服务。请问有什么可以帮您？"),
        QuickReply(title="稍候", text="好的，我查询一下，请稍候。"),
        QuickReply(title="结束", text="感谢您的耐心，如还有问题随时联系我们。"),
    ]


class ComplaintSettings(_Section):
    """Complaints on the 2020 banking and insurance complaint rules' clock (calendar days)."""

    decision_days: int = Field(default=15, ge=1, le=90,
                               description="a decision is due this many days after receipt")
    extended_days: int = Field(default=30, ge=1, le=120,
                               description="... after an extension for a complex case")
    further_days: int = Field(default=30, ge=1, le=120,
                              description="a further extension (an admin approves it)")
    remind_days_before: int = Field(default=3, ge=0, le=30,
                                    description="the handler is reminded this long before")
    sweep_minutes: float = Field(default=30.0, gt=0, le=1440,
                                 description="how often reminders and overdue are checked")
    redress_zh: str = Field(
        default="如对处理结果不满意，您可以申请调解，或依法申请仲裁、提起诉讼，也可向金融监管部门反映。",
        min_length=1, max_length=300)
    redress_en: str = Field(
        default="If you disagree with this decision you may ask for mediation, apply for "
        "arbitration or go to court, or contact the financial regulator.",
        min_length=1, max_length=300)


class SatisfactionSettings(_Section):
    """Satisfaction surveys after every case, and the service target they are measured by."""

    answer_hours: float = Field(default=48.0, gt=0, le=720,
                                description="an SMS digit answers a survey sent this recently")
    target_percent: float = Field(default=95.0, gt=0, le=100,
                                  description="satisfied (4-5) among answers, the target")


class RedisSettings(_Section):
    url: str = ""


class CompanySettings(_Section):
    name_zh: str = "安行保险"
    name_en: str = "Anxing Insurance"
    hotline: str = "95500"
    default_language: Literal["zh-CN", "en"] = "zh-CN"
    default_phone_region: str = "CN"


class ReportSettings(_Section):
    """Accident reports (报案) in Telegram."""

    max_per_day: int = Field(default=3, ge=1, le=50,
                             description="reports one customer may confirm per local day")
    reminder_minutes: float = Field(default=30.0, gt=0)
    expire_hours: float = Field(default=24.0, gt=0)
    sweep_interval_seconds: float = Field(default=60.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _reminder_before_expiry(self) -> ReportSettings:
        if self.reminder_minutes >= self.expire_hours * 60:
            raise ValueError("reminder_minutes: must be shorter than expire_hours")
        return self


class CoreSettings(_Section):
    """The insurer's core system, which takes the confirmed accident reports."""

    report_webhook_url: str = Field(default="", description="empty: reports wait in the queue")
    report_webhook_secret: SecretStr = SecretStr("")
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    max_attempts: int = Field(default=8, ge=1, le=100)
    backoff_base_seconds: float = Field(default=30.0, gt=0)
    backoff_max_seconds: float = Field(default=3600.0, gt=0)
    poll_interval_seconds: float = Field(default=5.0, gt=0, le=600)
    lease_seconds: float = Field(default=120.0, ge=5)

    @model_validator(mode="after")
    def _url_needs_secret(self) -> CoreSettings:
        url = self.report_webhook_url
        if url and not url.startswith(("http://", "https://")):
            raise ValueError("report_webhook_url: must start with http:// or https://")
        if url and not self.report_webhook_secret.get_secret_value():
            raise ValueError("report_webhook_secret: required when report_webhook_url is set")
        if self.lease_seconds <= self.timeout_seconds:
            raise ValueError("lease_seconds: must be longer than timeout_seconds")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.report_webhook_url)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ENGAGE_", env_nested_delimiter="__", extra="forbid", case_sensitive=False
    )

    company: CompanySettings = CompanySettings()
    database: DatabaseSettings = DatabaseSettings()
    redis: RedisSettings = RedisSettings()
    telegram: TelegramSettings = TelegramSettings()
    twilio: TwilioSettings = TwilioSettings()
    sms: SmsSettings = SmsSettings()
    delivery: DeliverySettings = DeliverySettings()
    schedule: ScheduleSettings = ScheduleSettings()
    renewal: RenewalSettings = RenewalSettings()
    care: CareSettings = CareSettings()
    holidays: HolidaySettings = HolidaySettings()
    office_hours: OfficeHoursSettings = OfficeHoursSettings()
    weather: WeatherSettings = WeatherSettings()
    loyalty: LoyaltySettings = LoyaltySettings()
    uploads: UploadSettings = UploadSettings()
    web: WebSettings = WebSettings()
    operator: OperatorSettings = OperatorSettings()
    conversations: ConversationSettings = ConversationSettings()
    complaints: ComplaintSettings = ComplaintSettings()
    satisfaction: SatisfactionSettings = SatisfactionSettings()
    report: ReportSettings = ReportSettings()
    core: CoreSettings = CoreSettings()
    retention: RetentionSettings = RetentionSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file arrives as init data; the environment outranks it.
        return (env_settings, init_settings)


class ConfigError(Exception):
    """A configuration mistake, worded as one line that names the key."""


def _config_path(explicit: str | os.PathLike[str] | None) -> Path | None:
    if explicit:
        return Path(explicit)
    if env := os.environ.get("ENGAGE_CONFIG"):
        return Path(env)
    default = Path("config.toml")
    return default if default.is_file() else None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror}") from None


def _describe(exc: ValidationError) -> str:
    err = exc.errors()[0]
    key = ".".join(str(part) for part in err["loc"])
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = "unknown key"
    # A model-level check words its own key ("webhook_url: required ...").
    if ": " in message and err["type"] == "value_error":
        inner, _, message = message.partition(": ")
        key = f"{key}.{inner}" if key else inner
    more = len(exc.errors()) - 1
    suffix = f" (and {more} more)" if more else ""
    return f"{key}: {message}{suffix}"


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Read the configuration, raising ``ConfigError`` with a one-line explanation."""
    config_path = _config_path(path)
    data = _read_toml(config_path) if config_path else {}
    try:
        return Settings(**data)
    except ValidationError as exc:
        where = f" in {config_path}" if config_path else ""
        raise ConfigError(f"invalid configuration{where}: {_describe(exc)}") from None
