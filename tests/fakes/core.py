"""A fake of the insurer's core system intake: ``POST /claims/reports`` takes an accident
report the way a careful receiver would.

* The signature is checked over the exact body bytes with the shared secret:
  ``X-Engage-Signature: sha256=<hex HMAC-SHA256(secret, "<X-Engage-Timestamp>.<body>")>``;
  a wrong or missing one answers 401 and records nothing.
* A timestamp more than ``tolerance`` seconds from the fake's clock (``now``, a callable
  returning Unix seconds, injectable) answers 401: a replayed request.
* The ``idempotency_key`` in the body de-duplicates: a repeat answers 200 with the claim
  number first given, and :attr:`FakeCore.claims` keeps one entry per key. Every accepted
  request, repeats included, is in :attr:`FakeCore.received`.
* A new report answers 201 ``{"claim_number": ...}`` when :attr:`assign_numbers` is on (the
  default), else 202 ``{}`` (the number comes later, by PUT to Engage).

Scripting: :meth:`fail_next` answers the next requests with a status (after reading them,
recording nothing), :meth:`hang_next` holds the next requests without an answer until the
fake closes (the client's timeout ends them), :meth:`lose_answer_next` takes the report and
then holds the answer (a crash between the core's commit and the reply).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.server import FakeServer

__all__ = ["CoreRequest", "FakeCore"]

PATH = "/claims/reports"


@dataclass(frozen=True)
class CoreRequest:
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class _Script:
    status: int = 0
    hang: bool = False
    lose_answer: bool = False


class FakeCore(FakeServer):
    def __init__(self, secret: str = "core-secret", *, tolerance: float = 300.0,
                 now: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.secret = secret.encode()
        self.tolerance = tolerance
        self.clock = now
        self.assign_numbers = True
        self.received: list[CoreRequest] = []
        self.claims: dict[str, str] = {}  # idempotency key -> claim number
        self.refused: list[str] = []  # why requests were refused (401s)
        self._script: list[_Script] = []
        self._numbers = itertools.count(1)

    @property
    def url(self) -> str:
        return f"{self.base_url}{PATH}"

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(PATH, self._take)
        return app

    def fail_next(self, status: int, *, times: int = 1) -> None:
        self._script += [_Script(status=status) for _ in range(times)]

    def hang_next(self, *, times: int = 1) -> None:
        self._script += [_Script(hang=True) for _ in range(times)]

    def lose_answer_next(self) -> None:
        self._script.append(_Script(lose_answer=True))

    def _verify(self, request: web.Request, body: bytes) -> str | None:
        timestamp = request.headers.get("X-Engage-Timestamp", "")
        given = request.headers.get("X-Engage-Signature", "")
        expected = "sha256=" + hmac.new(self.secret, timestamp.encode() + b"." + body,
                                        hashlib.sha256).hexdigest()
        if not hmac.compare_digest(given.encode(), expected.encode()):
            return "bad signature"
        if not timestamp.isdigit() or abs(self.clock() - int(timestamp)) > self.tolerance:
            return "stale timestamp"
        return None

    async def _take(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if problem := self._verify(request, body):
            self.refused.append(problem)
            return web.json_response({"error": problem}, status=401)
        script = self._script.pop(0) if self._script else _Script()
        if script.hang:
            await self.wait(3600)
            return web.json_response({}, status=504)
        if script.status:
            return web.json_response({"error": "scripted"}, status=script.status)
        report = json.loads(body)
        self.received.append(CoreRequest(report, dict(request.headers)))
        key = str(report["idempotency_key"])
        known = self.claims.get(key)
        if known is None:
            self.claims[key] = f"CLM{next(self._numbers):08d}"
        if script.lose_answer:
            await self.wait(3600)
            return web.json_response({}, status=504)
        if not self.assign_numbers:
            return web.json_response({}, status=202)
        return web.json_response({"claim_number": self.claims[key]},
                                 status=200 if known else 201)
