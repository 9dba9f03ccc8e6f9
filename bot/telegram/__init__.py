"""The Telegram bot for policyholders (aiogram 3): one router per feature module.

``get_routers()`` builds fresh routers on every call (a router can belong to one dispatcher
only, and nothing is built at import). The order matters among handlers of one kind of
update: linking first (so a contact or a code is never taken for anything else), the
accident report (its typed answers — a plate, an address — are not claim numbers), the
features (claims also answers a claim number in free text), uploads (whose "send a file"
prompt only catches what no command took), the renewal answers' buttons, and the fallback
("I did not understand", "this button has expired").

Every message walks the handlers in this order until one takes it (the dispatcher holds them
as one indexed router, ``bot.telegram.routing``). Routers that hold no message handlers sit
where messages never reach them — the renewal answers (buttons only, each with
its own callback-data prefix) just before the fallback's catch-all button handler, the error
router (the only one with error handlers) and the membership router (blocked / unblocked
only) after it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the package is imported for its light modules before aiogram is
    from aiogram import Router


def get_routers() -> list[Router]:
    from bot.telegram import (
        city,
        claims,
        complaints,
        desk,
        errors,
        fallback,
        invite,
        linking,
        membership,
        points,
        policies,
        preferences,
        renewal_answers,
        report,
        rewards,
        surveys,
        uploads,
        vouchers,
    )
    from bot.telegram import (
        help as help_screen,
    )

    return [
        linking.get_router(),
        report.get_router(),
        policies.get_router(),
        claims.get_router(),
        points.get_router(),
        rewards.get_router(),
        vouchers.get_router(),
        invite.get_router(),
        preferences.get_router(),
        city.get_router(),
        help_screen.get_router(),
        desk.get_router(),
        complaints.get_router(),
        surveys.get_router(),
        uploads.get_router(),
        renewal_answers.get_router(),
        fallback.get_router(),
        errors.get_router(),
        membership.get_router(),
    ]
