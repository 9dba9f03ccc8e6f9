"""What every kind of import shares: the row error, the batch outcome, the kind's contract."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from operator import itemgetter
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.models import Model

from storage.models import Policy
from storage.sql import Statements

R = TypeVar("R")


class RowError(Exception):
    """One cell (or the whole row, column ``row``) is wrong: the row is skipped and reported."""

    def __init__(self, column: str, problem: str) -> None:
        super().__init__(f"{column}: {problem}")
        self.column = column
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Problem:
    """A rejected row, as reported: ``line N: column: problem``."""

    line: int
    column: str
    problem: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.column}: {self.problem}"


class Parsed(NamedTuple, Generic[R]):
    """A record that passed validation, with the line it starts on."""

    line: int
    record: R


@dataclass(slots=True)
class Outcome:
    """What writing one batch did; ``problems`` are rows the database check refused,
    ``warnings`` rows written without one of their cells (reported the same way)."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    kept: int = 0  # accepted rows where a value the customer chose stayed
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Context:
    """Everything a kind needs besides the rows: settings and the injected clock."""

    default_region: str
    now: datetime  # aware; created_at/updated_at and event times of this import
    local_tz: tzinfo  # the zone of naive date-times in the file


class Columns:
    """The header: which known columns the file has, and where.

    A column the file does not have reads as ``""``, exactly like a blank cell, so "not given"
    means the same either way.
    """

    __slots__ = ("_index",)

    def __init__(self, index: dict[str, int]) -> None:
        self._index = index

    def has(self, name: str) -> bool:
        return name in self._index

    def picker(self, *names: str) -> Callable[[list[str]], list[str]]:
        """A function from a record's cells to the stripped values of ``names``, in order.

        It appends one blank cell to the record it is given, and reads absent columns there.
        """
        if len(names) < 2:
            raise ValueError("pick at least two columns")
        getter = itemgetter(*[self._index.get(name, -1) for name in names])

        def pick(values: list[str]) -> list[str]:
            values.append("")
            return list(map(str.strip, getter(values)))

        return pick


class Kind(Protocol[R]):
    """One kind of import: its columns, how a record is validated, how a batch is written.

    ``parse`` is pure (no I/O) and raises ``RowError``. Rows sharing one of their ``keys``
    (natural keys, or anything a row may change that a later one reads) never share a batch.
    ``write`` runs inside the batch's
    transaction; it checks what needs the database (owners, referenced policies), upserts by
    natural key and must not change its input (a batch may be retried).
    """

    required: tuple[str, ...]
    optional: tuple[str, ...]

    async def prepare(self, conn: BaseDBAsyncClient) -> None: ...

    def parse(self, values: list[str]) -> R: ...

    def keys(self, record: R) -> tuple[str, ...]: ...

    async def write(self, conn: BaseDBAsyncClient, batch: Sequence[Parsed[R]]) -> Outcome: ...


T = TypeVar("T")


def given_or(new: T | None, old: T) -> T:
    """The file's value, or — for a blank cell — what the row in the database already has."""
    return old if new is None else new


class Matched(NamedTuple, Generic[R]):
    """A batch item whose policy exists: the policy's ``(number, id, customer_id)`` and the
    stored row with the item's key (``(id, key, *fields)``), None when the key is new."""

    item: Parsed[R]
    policy: tuple[Any, ...]
    current: tuple[Any, ...] | None


async def match_policies(statements: Statements, batch: Sequence[Parsed[R]], outcome: Outcome,
                         *, policy_of: Callable[[R], str], model: type[Model], key: str,
                         key_of: Callable[[R], str], fields: Sequence[str]) -> list[Matched[R]]:
    """The items of a batch of rows that belong to a policy (claims, payments), with their
    policy and their stored row read in one statement each; a row naming no known policy is
    recorded as a problem of its line and left out."""
    policies: dict[str, tuple[Any, ...]] = {
        row[0]: row for row in await statements.select_in(
            Policy, "number", {policy_of(i.record) for i in batch},
            ("number", "id", "customer_id"))
    }
    existing: dict[str, tuple[Any, ...]] = {
        row[1]: row for row in await statements.select_in(
            model, key, {key_of(i.record) for i in batch}, ("id", key, *fields))
    }
    matched: list[Matched[R]] = []
    for item in batch:
        number = policy_of(item.record)
        policy = policies.get(number)
        if policy is None:
            outcome.problems.append(Problem(item.line, "policy", f"no policy with number {number}"))
            continue
        matched.append(Matched(item, policy, existing.get(key_of(item.record))))
    return matched
