"""The rate limits of one process, from the settings: in memory, or shared through Redis
(``redis.url``) by every process that sends for the same bot and Twilio account."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bot.delivery import ratelimit
from bot.delivery.dispatcher import Limits
from bot.delivery.ratelimit import WireMargin
from bot.settings import Settings


@dataclass
class WireMargins:
    """The measured release-to-wire margin of each channel's limiters (see ratelimit)."""

    telegram: WireMargin = field(default_factory=WireMargin)
    sms: WireMargin = field(default_factory=WireMargin)


def limits_for(settings: Settings,
               margins: WireMargins) -> tuple[Limits, Callable[[], object] | None]:
    tg = settings.telegram
    tw = settings.twilio
    if settings.redis.url:
        from redis.asyncio import Redis

        redis = Redis.from_url(settings.redis.url)
        limits = Limits(
            telegram=ratelimit.redis_rate_limiter(redis, "engage:tg", tg.rate_per_second,
                                                  margin=margins.telegram),
            telegram_per_chat=ratelimit.redis_keyed_interval(
                redis, "engage:tg-chat", tg.per_chat_interval_seconds, margin=margins.telegram),
            sms=ratelimit.redis_rate_limiter(redis, "engage:sms", tw.segments_per_second,
                                             margin=margins.sms),
            sms_concurrency=tw.max_concurrent_requests,
        )
        return limits, redis.aclose
    return Limits(
        telegram=ratelimit.local_rate_limiter(tg.rate_per_second, margin=margins.telegram),
        telegram_per_chat=ratelimit.local_keyed_interval(tg.per_chat_interval_seconds,
                                                         margin=margins.telegram),
        sms=ratelimit.local_rate_limiter(tw.segments_per_second, margin=margins.sms),
        sms_concurrency=tw.max_concurrent_requests,
    ), None
