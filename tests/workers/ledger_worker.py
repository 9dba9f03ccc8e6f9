"""Standalone ledger postings in their own process, for the group-commit crash test.

    python -m tests.workers.ledger_worker DB_URL FIRST COUNT [--stop-before-commit]

Makes postings ``crash:FIRST`` … ``crash:FIRST+COUNT-1`` concurrently through the posting
queue (``posting(i)`` says which: a credit of 10, every fourth a debit of 5, over the
customers in id order) and prints ``posted N replayed N refused N``. With
``--stop-before-commit`` every group, once all its postings are applied, prints
``applied KEYS`` (JSON) and waits before its commit for ever: the test kills the process
there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from tortoise import Tortoise

from loyalty import ledger
from loyalty.config import LoyaltySettings
from loyalty.errors import InsufficientPoints
from storage import db as storage_db
from storage.loyalty_models import EntryKind
from storage.models import Customer

NOW = datetime(2026, 3, 15, 2, 0, tzinfo=UTC)


def posting(i: int, customers: Sequence[int]) -> tuple[int, int]:
    """Posting ``i``: (customer id, signed points)."""
    return customers[i % len(customers)], -5 if i % 4 == 3 else 10


async def post(i: int, customers: Sequence[int]) -> ledger.Posted | None:
    customer_id, points = posting(i, customers)
    if points > 0:
        return await ledger.credit(customer_id, points, kind=EntryKind.ADJUSTMENT,
                                   key=f"crash:{i}", now=NOW, settings=LoyaltySettings())
    try:
        return await ledger.debit(customer_id, -points, kind=EntryKind.REDEMPTION,
                                  key=f"crash:{i}", now=NOW)
    except InsufficientPoints:
        return None


async def stop(keys: Sequence[str]) -> None:
    print("applied", json.dumps(list(keys)), flush=True)
    await asyncio.Event().wait()  # until killed


async def main(args: argparse.Namespace) -> None:
    await Tortoise.init(config=storage_db.tortoise_config(args.db))
    try:
        customers: list[int] = await Customer.all().order_by("id").values_list(
            "id", flat=True)  # type: ignore[assignment]
        if args.stop_before_commit:
            ledger.posting_queue().before_commit = stop
        results = await asyncio.gather(*(post(i, customers)
                                         for i in range(args.first, args.first + args.count)))
    finally:
        await Tortoise.close_connections()
    done = [r for r in results if r is not None]
    print(f"posted {sum(not r.replayed for r in done)} "
          f"replayed {sum(r.replayed for r in done)} refused {len(results) - len(done)}",
          flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("first", type=int)
    parser.add_argument("count", type=int)
    parser.add_argument("--stop-before-commit", action="store_true")
    asyncio.run(main(parser.parse_args()))
    sys.exit(0)
