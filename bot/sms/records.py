"""The ``sms_inbound`` rows — one per MessageSid, with the reply it got — written and read
through ``storage.sql``.

A query's row carries its reply and is written alone (no transaction around it), so the rows
of queries answered at the same time are written together: ``Answered.store`` waits until its
own row is written, but the rows of messages answered while one INSERT is in flight go into
the next single INSERT — one statement and one commit for many messages (on SQLite every
commit holds the only connection for an fsync). Each caller still learns whether *its* row
went in or its MessageSid was already taken (``INSERT … ON CONFLICT DO NOTHING RETURNING``; on
PostgreSQL that waits for an uncommitted row with the key, as a plain INSERT does), and a
statement that fails is retried row by row, so one bad row fails only its own message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.sms.grouped import Grouped
from storage.sql import Params, current, execute, fetch, fetchrow, insert_ignoring, is_postgres

COLUMNS = ("message_sid", "from_phone", "customer_id", "body", "keyword", "reply",
           "num_media", "created_at")
_ROWS_PER_INSERT = 100  # 800 parameters: inside every SQLite build's limit
_INSERT = ("INSERT INTO sms_inbound (message_sid, from_phone, customer_id, body, keyword, "
           "reply, num_media, created_at) VALUES (:message_sid, :from_phone, :customer_id, "
           ":body, :keyword, :reply, :num_media, :created_at)")
_SET_REPLY = "UPDATE sms_inbound SET reply = :reply WHERE message_sid = :sid"
_REPLY_OF = "SELECT reply FROM sms_inbound WHERE message_sid = :sid"

Row = Mapping[str, Any]
"""An ``sms_inbound`` row: a value for each of ``COLUMNS``."""


async def insert(row: Row) -> None:
    """The row alone, in the caller's transaction (``IntegrityError``: the MessageSid is
    taken)."""
    await execute(current(), _INSERT, {name: row[name] for name in COLUMNS})


async def set_reply(message_sid: str, reply: str) -> None:
    await execute(current(), _SET_REPLY, {"sid": message_sid, "reply": reply})


async def reply_of(message_sid: str) -> str | None:
    """The reply stored with the message; None when it has no row (visible) yet."""
    row = await fetchrow(current(), _REPLY_OF, {"sid": message_sid})
    return None if row is None else str(row["reply"])


async def insert_new(rows: Sequence[Row]) -> set[str]:
    """The rows whose MessageSid is not taken, in one statement (rows of one MessageSid:
    the first); the MessageSids written."""
    params = Params()
    values = ", ".join(
        "(" + ", ".join(params.add(row[name]) for name in COLUMNS) + ")" for row in rows)
    sql = insert_ignoring("sms_inbound", COLUMNS, f"VALUES {values}", conflict="message_sid",
                          postgres=is_postgres())
    return {str(row["message_sid"])
            for row in await fetch(current(), f"{sql} RETURNING message_sid", params)}


class Answered:
    """Group commit of answered queries' rows (module docstring; ``bot.sms.grouped``)."""

    def __init__(self) -> None:
        self._grouped: Grouped[Row, bool] = Grouped(_store_many, _store_one,
                                                      max_group=_ROWS_PER_INSERT)

    async def store(self, row: Row) -> bool:
        """Write ``row`` (outside any transaction); False when its MessageSid was taken."""
        return await self._grouped(row)


async def _store_many(rows: Sequence[Row]) -> list[bool]:
    """Rows of one MessageSid in a batch: the first is written, the others find it taken."""
    first: dict[str, Row] = {}
    for row in rows:
        first.setdefault(str(row["message_sid"]), row)
    taken = await insert_new(list(first.values()))
    return [str(row["message_sid"]) in taken and first[str(row["message_sid"])] is row
            for row in rows]


async def _store_one(row: Row) -> bool:
    return bool(await insert_new([row]))
