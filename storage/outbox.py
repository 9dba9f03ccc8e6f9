"""Putting messages into the outbox: the only way any producer asks for a message to be sent.

The dedup key is unique in the table, so enqueueing is idempotent: a second call with the same
key returns the existing row and changes nothing, whoever makes it (a re-run plan, a restart,
a second process).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from storage.models import Category, Message, MessageStatus
from storage.sql import (
    Fragment,
    Params,
    Statements,
    current,
    execute,
    fetch,
    for_update,
    in_list,
    insert_ignoring,
    inside_transaction,
    is_postgres,
    plan_each_execution,
    typed,
)

ChannelPolicy = Literal["telegram_then_sms", "telegram_only", "sms_only"]


@dataclass(frozen=True, slots=True)
class Outbound:
    """What a producer wants sent: rendered later, in the customer's language, at dispatch."""

    dedup_key: str
    kind: str
    category: Category
    customer_id: int
    template_key: str
    not_before: datetime
    params: dict[str, Any] = field(default_factory=dict)
    stale_after: datetime | None = None
    channel_policy: ChannelPolicy = "telegram_then_sms"
    campaign_id: int | None = None

    def __post_init__(self) -> None:
        if self.not_before.tzinfo is None:
            raise ValueError("not_before must be timezone-aware")
        if self.stale_after is not None and self.stale_after.tzinfo is None:
            raise ValueError("stale_after must be timezone-aware")

    def to_row(self) -> Message:
        return Message(
            dedup_key=self.dedup_key,
            kind=self.kind,
            category=self.category,
            customer_id=self.customer_id,
            template_key=self.template_key,
            params=self.params,
            not_before=self.not_before,
            stale_after=self.stale_after,
            channel_policy=self.channel_policy,
            campaign_id=self.campaign_id,
        )


async def enqueue(item: Outbound) -> tuple[Message, bool]:
    """Queue one message; returns the row and whether this call created it."""
    existing = await Message.get_or_none(dedup_key=item.dedup_key)
    if existing is not None:
        return existing, False
    row = item.to_row()
    try:
        async with in_transaction():
            await row.save()
    except IntegrityError:
        # Lost a race with another producer for the same key: theirs stands.
        return await Message.get(dedup_key=item.dedup_key), False
    return row, True


async def enqueue_many(items: Iterable[Outbound], *, batch_size: int = 1000) -> int:
    """Queue many messages in batches; returns how many were new.

    Memory is bounded by ``batch_size`` whatever the size of ``items`` (pass a generator).
    Keys already in the outbox are left alone (``INSERT … ON CONFLICT DO NOTHING``).
    """
    created = 0
    batch: list[Outbound] = []
    for item in items:
        batch.append(item)
        if len(batch) >= batch_size:
            created += await _insert_batch(batch)
            batch = []
    if batch:
        created += await _insert_batch(batch)
    return created


async def _insert_batch(batch: list[Outbound]) -> int:
    unique = {item.dedup_key: item for item in batch}
    async with in_transaction():
        present: set[str] = {
            str(key)
            for key in await Message.filter(dedup_key__in=list(unique)).values_list(
                "dedup_key", flat=True
            )
        }
        fresh = [item.to_row() for key, item in unique.items() if key not in present]
        if fresh:
            await Message.bulk_create(fresh, ignore_conflicts=True)
    return len(fresh)


_MAX_BULK_BATCH = 10_000  # SQLite allows 32,766 bound values per statement


async def enqueue_bulk(items: Iterable[Outbound], *, batch_size: int = 5000) -> int:
    """``enqueue_many`` for large volumes (a day's plan): same contract, returns how many were new.

    Keys already in the outbox, or repeated in ``items``, are left alone, and memory is bounded
    by ``batch_size``. The difference is only how: no ORM objects, one
    ``INSERT … ON CONFLICT (dedup_key) DO NOTHING`` per batch (``unnest`` arrays on PostgreSQL,
    ``INSERT OR IGNORE`` with ``executemany`` on SQLite), with the model's defaults for the
    columns a producer does not set.
    """
    created = 0
    batch: dict[str, Outbound] = {}
    for item in items:
        batch.setdefault(item.dedup_key, item)
        if len(batch) >= min(batch_size, _MAX_BULK_BATCH):
            created += await _insert_bulk(list(batch.values()))
            batch = {}
    if batch:
        created += await _insert_bulk(list(batch.values()))
    return created


# The columns a producer sets, per row; the others get the model's starting values.
BULK_COLUMNS = (
    "dedup_key", "kind", "category", "customer_id", "channel_policy", "template_key", "params",
    "not_before", "stale_after", "campaign_id",
)
_PG_TYPES = ("text", "text", "text", "int", "text", "text", "jsonb", "timestamptz",
             "timestamptz", "int")
_BULK_DEFAULTS: dict[str, str | int] = {
    "status": MessageStatus.PENDING.value, "skip_reason": "", "attempts": 0, "last_error": "",
    "segments": 0,
}


def _literal(value: str | int) -> str:
    return f"'{value}'" if isinstance(value, str) else str(int(value))


_OPTIONAL_COLUMNS = frozenset({"stale_after", "campaign_id"})


def insert_select(columns: Mapping[str, Fragment], source: Fragment, *, created_at: datetime,
                  postgres: bool, ignoring: bool = True) -> tuple[str, Params]:
    """``INSERT INTO message … SELECT … <source>`` and its values: one message per row that
    ``source`` (``FROM … WHERE …``) selects, built entirely by the database; keys already
    queued, or repeated within the statement, are left alone — or, with ``ignoring`` false,
    fail the whole statement (``IntegrityError``; see ``NewRanges``).

    ``columns`` gives the SQL of each producer column (``BULK_COLUMNS``) by name — ``params`` as
    ``jsonb`` on PostgreSQL and JSON text on SQLite (``storage.sql.json_object``), the times as
    ``timestamptz`` / the text Tortoise stores; ``stale_after`` and ``campaign_id`` may be left
    out (NULL). Every fragment keeps its own named values, so whatever order the columns and
    the source are written in, no value can bind to another's placeholder.
    """
    if missing := set(BULK_COLUMNS) - _OPTIONAL_COLUMNS - set(columns):
        raise ValueError(f"no SQL for the outbox columns {sorted(missing)}")
    if unknown := set(columns) - set(BULK_COLUMNS):
        raise ValueError(f"not outbox producer columns: {sorted(unknown)}")
    params = Params()
    stamp = typed(params.add(created_at), "timestamptz", postgres=postgres)
    produced = ", ".join(params.take(columns[name]) if name in columns else "NULL"
                         for name in BULK_COLUMNS)
    defaults = ", ".join(_literal(v) for v in _BULK_DEFAULTS.values())
    rows = f"SELECT {stamp}, {stamp}, {defaults}, {produced} {params.take(source)}"
    targets = ("created_at", "updated_at", *_BULK_DEFAULTS, *BULK_COLUMNS)
    if not ignoring:
        return f"INSERT INTO message ({', '.join(targets)}) {rows}", params
    sql = insert_ignoring("message", targets, rows, conflict="dedup_key", postgres=postgres)
    return sql, params


class NewRanges:
    """``insert_select`` statements over successive ranges of one selection, each in its own
    transaction, whose rows are expected to be new (a festival day planned for the first time).

    Leaving keys that are already there alone costs PostgreSQL a speculative insertion for
    every row (``ON CONFLICT``: the key looked up first, the insertion confirmed after, one
    more WAL record) — a fifth of a range's time when every key is new. So a range is first
    written by a plain ``INSERT``: the unique index still refuses a key that is already there,
    which fails the statement and rolls its transaction back (nothing of the range stays),
    and the range is written again leaving such keys alone — as is every later range, since
    keys already there mean the day is being planned again. Either way each new key is
    queued once and every old one left as it was. Inside a caller's transaction (a dry run)
    every statement leaves them alone at once, as a failed one would abort that transaction;
    so does SQLite, whose ``INSERT OR IGNORE`` has no speculative insertion to save (the
    plain attempt would only add a failed statement to a re-run).

    Each transaction plans its statement with its values (``plan_each_execution``): the
    ranges share one statement text, whose generic plan cannot tell a range from the whole.
    """

    def __init__(self, columns: Mapping[str, Fragment], *, created_at: datetime) -> None:
        self._columns = columns
        self._created_at = created_at
        self._found_keys = False

    @property
    def found_keys(self) -> bool:
        """Whether a range met keys already queued (then every later one is written leaving
        them alone)."""
        return self._found_keys

    async def insert(self, source: Fragment) -> int:
        """Queue the messages of ``source``'s rows; how many were new."""
        if not (self._found_keys or inside_transaction()) and is_postgres():
            try:
                return await self._write(source, ignoring=False)
            except IntegrityError:
                self._found_keys = True
        return await self._write(source, ignoring=True)

    async def _write(self, source: Fragment, *, ignoring: bool) -> int:
        async with in_transaction() as conn:
            sql, params = insert_select(self._columns, source, created_at=self._created_at,
                                        postgres=is_postgres(conn), ignoring=ignoring)
            await plan_each_execution(conn)
            return await execute(conn, sql, params)


def _params_encoder() -> Callable[[Any], str]:
    """The JSON field's own encoder; for the stock ``json.dumps`` partial, one reusable
    ``JSONEncoder`` with the same options (same output, without building one per row)."""
    encode: Callable[[Any], str] = Message._meta.fields_map["params"].encoder  # type: ignore[attr-defined]
    if isinstance(encode, functools.partial) and encode.func is json.dumps and not encode.args:
        return json.JSONEncoder(**encode.keywords).encode
    return encode


def _bulk_rows(batch: list[Outbound]) -> list[tuple[Any, ...]]:
    encode = _params_encoder()
    utc: dict[datetime, datetime] = {}  # a batch shares a handful of send and stale times

    def in_utc(moment: datetime) -> datetime:
        converted = utc.get(moment)
        if converted is None:
            converted = utc[moment] = moment.astimezone(UTC)
        return converted

    return [
        (item.dedup_key, item.kind, item.category.value, item.customer_id, item.channel_policy,
         item.template_key, encode(item.params), in_utc(item.not_before),
         in_utc(item.stale_after) if item.stale_after is not None else None, item.campaign_id)
        for item in batch
    ]


async def _insert_bulk(batch: list[Outbound]) -> int:
    async with in_transaction() as conn:
        postgres = is_postgres(conn)
        keys = [item.dedup_key for item in batch]
        # Looking keys up first is much cheaper than letting the INSERT meet them (a re-run).
        found = await fetch(conn, "SELECT dedup_key FROM message WHERE "
                            f"{in_list('dedup_key', ':keys', postgres=postgres, sql_type='text')}",
                            {"keys": keys})
        present = {row["dedup_key"] for row in found}
        fresh = [item for item in batch if item.dedup_key not in present]
        if not fresh:
            return 0
        return await Statements(conn).insert_new(
            "message", BULK_COLUMNS, _PG_TYPES, _bulk_rows(fresh), conflict="dedup_key",
            stamped=("created_at", "updated_at"), stamp=datetime.now(UTC),
            literals={column: _literal(value) for column, value in _BULK_DEFAULTS.items()})


async def claim_due(now: datetime, *, lease_until: datetime, limit: int,
                    skip_locked: bool) -> list[int]:
    """Claim up to ``limit`` due messages (pending and due, or claimed with a lease that ran
    out), oldest first, in one statement; their ids. With ``skip_locked`` (PostgreSQL, several
    dispatchers) rows another claim holds are passed over, so claims are disjoint."""
    conn = current()
    lock = for_update(postgres=is_postgres(conn), skip_locked=True) if skip_locked else ""
    rows = await fetch(
        conn,
        "UPDATE message SET status = :claimed, lease_expires_at = :lease "
        "WHERE id IN (SELECT id FROM message "
        "WHERE (status = :pending AND not_before <= :now) "
        "OR (status = :claimed AND lease_expires_at < :now) "
        f"ORDER BY not_before, id LIMIT :limit{lock}) RETURNING id",
        {"claimed": MessageStatus.CLAIMED.value, "pending": MessageStatus.PENDING.value,
         "lease": lease_until, "now": now, "limit": limit},
    )
    return [row["id"] for row in rows]
