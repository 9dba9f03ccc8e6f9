"""A one-line progress display for terminals: rows, rows per second, share of the file read."""

from __future__ import annotations

import time
from typing import TextIO


class Progress:
    """Redraws one carriage-return line on ``stream`` at most every ``interval`` seconds."""

    def __init__(self, stream: TextIO, label: str, total_bytes: int,
                 interval: float = 0.2) -> None:
        self._stream = stream
        self._label = label
        self._total = max(total_bytes, 1)
        self._interval = interval
        self._started = time.monotonic()
        self._drawn = 0.0
        self._width = 0  # characters on the line now

    def update(self, rows: int, position: int, *, force: bool = False) -> None:
        clock = time.monotonic()
        if not force and clock - self._drawn < self._interval:
            return
        self._drawn = clock
        elapsed = max(clock - self._started, 1e-9)
        share = min(100.0, 100.0 * position / self._total)
        line = (f"{self._label}: {rows:,} rows  {rows / elapsed:,.0f} rows/s  "
                f"{share:5.1f}%")
        self._stream.write("\r" + line.ljust(self._width))
        self._stream.flush()
        self._width = len(line)

    def clear(self) -> None:
        """Blank the line, so that other output (on a terminal: the same screen) starts clean;
        the next update draws it again."""
        if self._width:
            self._stream.write("\r" + " " * self._width + "\r")
            self._stream.flush()
            self._width = 0
            self._drawn = 0.0

    def finish(self, rows: int, position: int) -> None:
        self.update(rows, position, force=True)
        self._stream.write("\n")
        self._stream.flush()
