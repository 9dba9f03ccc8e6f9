"""Which campaigns may still send, as this process saw them at most ``max_age`` ago.

Pausing a campaign holds its *pending* messages in the database, but a dispatcher may already
have claimed a batch of them (200 by default, tens of seconds of sending at the rate limit).
So the dispatcher asks this gate about every campaign message twice: before it waits for its
rate-limit slot (``refresh``, which reads the statuses again once they are older than
``max_age``) and right before the request leaves (``verdict``, from memory, so nothing is
added between the limiter's release and the wire). Once a pause or a cancel is committed, at
most ``max_age`` later no claimed message of that campaign is handed to a provider; only
sends already on the wire finish.

One query refreshes every campaign the process is currently sending for; a campaign not asked
about for a minute is forgotten.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from storage.operator_models import Campaign, CampaignStatus

_STOPPED = {CampaignStatus.PAUSED.value, CampaignStatus.CANCELLED.value}
_FORGET_AFTER = 60.0


class CampaignGate:
    def __init__(self, *, max_age: float = 0.5,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._max_age = max_age
        self._monotonic = monotonic
        self._status: dict[int, str] = {}
        self._read: set[int] = set()  # the campaigns the last read covered
        self._asked: dict[int, float] = {}  # campaign id -> when it was last asked about
        self._read_at = -float("inf")
        self._lock = asyncio.Lock()

    async def refresh(self, campaign_id: int) -> None:
        """Make sure what is known about ``campaign_id`` is at most ``max_age`` old."""
        now = self._monotonic()
        self._asked[campaign_id] = now
        if campaign_id in self._read and now - self._read_at <= self._max_age:
            return
        async with self._lock:  # one query at a time; the others use what it read
            now = self._monotonic()
            if campaign_id in self._read and now - self._read_at <= self._max_age:
                return
            wanted = [cid for cid, asked in self._asked.items() if now - asked < _FORGET_AFTER]
            self._asked = {cid: self._asked[cid] for cid in wanted}
            rows = await Campaign.filter(id__in=wanted).values_list("id", "status")
            self._status = {int(cid): str(status) for cid, status in rows}
            self._read = set(wanted)
            self._read_at = now

    def verdict(self, campaign_id: int) -> str | None:
        """``paused`` or ``cancelled`` when the campaign must not send now, else None (a
        campaign that no longer exists is not held back)."""
        status = self._status.get(campaign_id)
        return status if status in _STOPPED else None
