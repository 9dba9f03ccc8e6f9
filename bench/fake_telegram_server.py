"""Serve the test suite's fake Bot API in its own process (so benchmarks measure the
dispatcher, not the fake). Prints the base URL on stdout, serves until stdin closes.

    python -m bench.fake_telegram_server
"""

from __future__ import annotations

import asyncio
import sys

from tests.fakes.telegram import FakeTelegram


class QuietFakeTelegram(FakeTelegram):
    """Keeps counts instead of every request, so a million sends do not grow its memory."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    async def _handle_method(self, request):  # type: ignore[no-untyped-def]
        response = await super()._handle_method(request)
        self.count += 1
        self.requests.clear()
        return response


async def main() -> None:
    async with QuietFakeTelegram() as fake:
        print(fake.base_url, flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    asyncio.run(main())
