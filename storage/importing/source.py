"""Reading a CSV export: the checks that turn an unusable file into one clear line, then its
records one at a time with the physical line each starts on.

The whole file is checked to be UTF-8 before the first row is imported, so a file with a bad
byte near its end is refused without having changed anything.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from .rows import Columns

if TYPE_CHECKING:
    from _csv import Reader

_CHUNK = 1 << 20


class ImportFileError(Exception):
    """The file cannot be imported at all; the message is one line that names the file."""


class CsvSource:
    """An open CSV file past its header row."""

    def __init__(self, path: Path, raw: BinaryIO, size: int, columns: Columns, width: int,
                 ignored: tuple[str, ...], reader: Reader, line: int) -> None:
        self.path = path
        self.size = size
        self.columns = columns
        self.width = width  # number of cells in the header row
        self.ignored = ignored  # header names that are not columns of this kind
        self._raw = raw
        self._reader = reader
        self._line = line  # the last physical line read so far

    def position(self) -> int:
        """Bytes of the file read so far (for progress)."""
        return self._raw.tell()

    def records(self) -> Iterator[tuple[int, list[str]]]:
        """Each non-blank record with the line number it starts on (the header is line 1).

        A quoted cell may span lines; ``csv.reader.line_num`` tells where each record ended,
        so the next one starts on the following line.
        """
        reader = self._reader
        while True:
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise ImportFileError(f"{self.path}: line {self._line + 1}: {exc}") from None
            except UnicodeDecodeError:
                raise ImportFileError(
                    f"{self.path}: not UTF-8 text (after line {self._line})") from None
            start = self._line + 1
            self._line = reader.line_num
            if any(values):
                yield start, values


def _describe(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, IsADirectoryError):
        return "is a directory, not a file"
    if isinstance(exc, PermissionError):
        return "permission denied"
    return exc.strerror or type(exc).__name__


def check_utf8(path: Path) -> None:
    """Raise ``ImportFileError`` unless ``path`` is a readable file of UTF-8 text.

    Reads the whole file (blocking: run it in a thread), a chunk of whole lines at a time —
    UTF-8 never puts a newline byte inside a character, so each chunk decodes on its own.
    """
    try:
        with path.open("rb") as raw:
            _decode_all(raw, path)
    except OSError as exc:
        raise ImportFileError(f"{path}: {_describe(exc)}") from None


def _decode_all(raw: BinaryIO, path: Path) -> None:
    lines = 0
    tail = b""
    while True:
        chunk = raw.read(_CHUNK)
        data = tail + chunk
        cut = data.rfind(b"\n") + 1 if chunk else len(data)
        block, tail = data[:cut], data[cut:]
        try:
            block.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = lines + block.count(b"\n", 0, exc.start) + 1
            raise ImportFileError(
                f"{path}: not UTF-8 text (bad byte on line {line}); save the file as UTF-8 CSV"
            ) from None
        lines += block.count(b"\n")
        if not chunk:
            break


def _header(path: Path, reader: Reader, required: Sequence[str],
            optional: Sequence[str]) -> tuple[dict[str, int], int, tuple[str, ...]]:
    try:
        header = next((row for row in reader if any(cell.strip() for cell in row)), None)
    except (csv.Error, UnicodeDecodeError) as exc:
        raise ImportFileError(f"{path}: unreadable header row: {exc}") from None
    if header is None:
        raise ImportFileError(f"{path}: empty file (expected a header row)")
    names = [cell.strip().casefold() for cell in header]
    known = set(required) | set(optional)
    duplicates = sorted({name for name in names if name in known and names.count(name) > 1})
    if duplicates:
        raise ImportFileError(f"{path}: duplicate column(s) {', '.join(duplicates)}")
    missing = [name for name in required if name not in names]
    if missing:
        raise ImportFileError(f"{path}: missing column(s) {', '.join(missing)}")
    index = {name: position for position, name in enumerate(names) if name in known}
    ignored = tuple(name for name in names if name and name not in known)
    return index, len(names), ignored


@contextmanager
def open_csv(path: Path, *, required: Sequence[str],
             optional: Sequence[str]) -> Iterator[CsvSource]:
    """Open ``path`` past its header row, or raise ``ImportFileError`` saying why it cannot be.

    Check the encoding first (``check_utf8``) so that a bad byte stops the import before
    anything is written; one found here all the same (the file changed) also stops it.
    """
    try:
        raw = path.open("rb")
        size = os.fstat(raw.fileno()).st_size
    except OSError as exc:
        raise ImportFileError(f"{path}: {_describe(exc)}") from None
    with raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        try:
            reader = csv.reader(text)
            index, width, ignored = _header(path, reader, required, optional)
            yield CsvSource(path, raw, size, Columns(index), width, ignored, reader,
                            reader.line_num)
        finally:
            text.detach()
