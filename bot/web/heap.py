"""The garbage collector in the long-running ``engage run`` process.

After start-up the heap holds some 300,000 objects that live as long as the process:
aiogram's and pydantic's models and schemas, tortoise's metadata, the texts. CPython's full
collections scan every one of them each time; measured with ``bench/telegram_updates.py`` a
full collection took 250–600 ms on the benchmark machine, stalling every webhook in flight
(that was the p99). ``gc.freeze()`` moves what exists once start-up is done into a permanent
generation that collections skip; everything allocated later is collected as before.

``engage run`` (``bot.cli``) already freezes once right after importing the bot stack, which it
imports with the collector paused: the rest of start-up then does not scan those objects, and
this second freeze adds what start-up built (the app, the dispatcher, the connections).
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)


def freeze_startup_heap() -> int:
    """Collect once, then exempt every surviving object from later collections. Returns how
    many objects were frozen."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info("start-up heap frozen: %d objects exempt from garbage collection", frozen)
    return frozen
