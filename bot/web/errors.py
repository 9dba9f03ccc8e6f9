"""One error map for the web app: a refusal raised anywhere below a route is answered by one
middleware, in the form of the part of the app that was called.

A refusal is a domain error with an HTTP ``status`` and a stable machine ``code``: the
operator services' ``Refusal`` (and the request-level refusals below: not signed in, CSRF,
role, body), and the loyalty programme's ``LoyaltyError``. Handlers raise; they never build an
error response. Each part of the app registers how it answers (``answer_under``):

- the operator API and the partner API: the JSON error ``{"error": code, "message": …}``
  with the refusal's details (a 401 adds ``WWW-Authenticate``), see ``json_errors``;
- the console: the error page in the operator's language, or back to the form.

A body that cannot be decoded (``UnreadableBody``) is the refusal ``unreadable_body`` (400).
Routes under no registered prefix (webhooks, health) keep aiohttp's own handling.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypedDict

from aiohttp import web

from bot.web.bodies import UnreadableBody
from bot.web.operators.errors import Refusal
from loyalty.errors import LoyaltyError

Refused = Refusal | LoyaltyError
Answer = Callable[[web.Request, Refused], Awaitable[web.StreamResponse]]

ANSWERS = web.AppKey("error_answers", dict[str, Answer])


class FieldProblem(TypedDict):
    """One invalid field of a request: ``audience.tiers[0]``, what is wrong, pydantic's type."""

    path: str
    message: str
    type: str


# -- refusals of the request itself (before a handler acted) ---------------------------------


class RequestRefused(Refusal):
    """Who is calling, may they, can their body be read: refused before anything was done."""


class Unauthorized(RequestRefused):
    code = "unauthorized"
    status = 401


class Forbidden(RequestRefused):
    code = "forbidden"
    status = 403


class CsrfRefused(RequestRefused):
    code = "csrf"
    status = 403


class Unreadable(RequestRefused):
    code = "unreadable_body"
    status = 400


class InvalidBody(RequestRefused):
    """The query or JSON body does not validate; ``details`` lists every problem."""

    code = "invalid_body"
    status = 422

    def __init__(self, details: list[FieldProblem]) -> None:
        first = details[0] if details else FieldProblem(path="body", message="invalid",
                                                        type="invalid")
        super().__init__(f"{first['path']}: {first['message']}", details=details)


class Restated(Refusal):
    """A domain error answered with more fields in its JSON body (a partner sees the voucher
    it could not use)."""

    def __init__(self, error: Refused, **details: Any) -> None:
        super().__init__(str(error), **details)
        self.code = error.code
        self.status = error.status


def details_of(refusal: Refused) -> dict[str, Any]:
    return refusal.details if isinstance(refusal, Refusal) else {}


# -- answers ----------------------------------------------------------------------------------


def json_error(status: int, code: str, message: str, *, realm: str,
               **details: Any) -> web.Response:
    """The API's error body: ``{"error": code, "message": message, **details}``."""
    body = {"error": code, "message": message or code, **details}
    headers = {"WWW-Authenticate": f'Bearer realm="{realm}"'} if status == 401 else None
    return web.json_response(body, status=status, headers=headers,
                             dumps=lambda v: json.dumps(v, ensure_ascii=False))


def json_errors(realm: str, messages: Mapping[str, str] | None = None) -> Answer:
    """How an API answers: its JSON error; ``messages`` replaces the refusal's own message
    (which may name internal detail) by the API's documented one for a code."""
    public = messages or {}

    async def answer(request: web.Request, refusal: Refused) -> web.StreamResponse:
        return json_error(refusal.status, refusal.code,
                          public.get(refusal.code) or str(refusal), realm=realm,
                          **details_of(refusal))

    return answer


def answer_under(app: web.Application, prefix: str, answer: Answer) -> None:
    """Refusals raised below a route whose path starts with ``prefix`` are answered by
    ``answer`` (the longest matching prefix wins)."""
    app[ANSWERS][prefix] = answer


def setup(app: web.Application) -> None:
    app[ANSWERS] = {}

    @web.middleware
    async def refusals(request: web.Request,
                       handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                       ) -> web.StreamResponse:
        try:
            return await handler(request)
        except (Refusal, LoyaltyError, UnreadableBody) as exc:
            answer = _answer_for(app[ANSWERS], request.path)
            if answer is None:
                raise
            refusal = Unreadable(exc.text or "") if isinstance(exc, UnreadableBody) else exc
            return await answer(request, refusal)

    app.middlewares.append(refusals)


def _answer_for(answers: dict[str, Answer], path: str) -> Answer | None:
    matching = [prefix for prefix in answers if path.startswith(prefix)]
    return answers[max(matching, key=len)] if matching else None
