"""HTTP plumbing shared by the operator API and console: who is calling, may they, what did
they send (a refusal is raised, and answered as JSON with the field path by
``bot.web.errors``).

The API accepts ``Authorization: Bearer <token>``, or the console's session cookie; a
cookie-authenticated request that changes anything must also carry the session's CSRF token
(``X-CSRF-Token`` header, or the ``csrf_token`` form field). A bearer token is not sent by
browsers on their own, so it needs no CSRF token.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError

from bot.settings import Settings
from bot.texts import Texts
from bot.web.bodies import UnreadableBody, read_form, read_json
from bot.web.errors import CsrfRefused, FieldProblem, Forbidden, InvalidBody, Unauthorized
from bot.web.keys import CLOCK, SETTINGS, TEXTS
from bot.web.operators.access import Actor, authenticate_token, same_secret, session_actor
from storage.operator_models import Role

log = logging.getLogger(__name__)

SESSION_COOKIE = "engage_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def field_path(loc: tuple[int | str, ...]) -> str:
    """``("audience", "tiers", 0)`` → ``audience.tiers[0]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


def validation_details(exc: ValidationError, prefix: tuple[str, ...] = ()) -> list[FieldProblem]:
    details = []
    for err in exc.errors(include_url=False):
        loc = (*prefix, *err["loc"])
        message = str(err["msg"]).removeprefix("Value error, ")
        # A model-level check names its own field: "reason: required when ..."
        if err["type"] == "value_error" and ": " in message and not err["loc"]:
            inner, _, message = message.partition(": ")
            loc = (*loc, inner)
        details.append(FieldProblem(path=field_path(loc), message=message, type=err["type"]))
    return details


def now_of(request: web.Request) -> datetime:
    return request.app[CLOCK]()


async def request_actor(request: web.Request) -> tuple[Actor | None, bool]:
    """The caller and whether a CSRF token was required but missing or wrong."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        operator = await authenticate_token(token.strip())
        return (Actor(operator, "token") if operator else None), False
    actor = await session_actor(request.cookies.get(SESSION_COOKIE, ""), now=now_of(request))
    if actor is None or request.method in SAFE_METHODS:
        return actor, False
    given = request.headers.get(CSRF_HEADER, "")
    if not given and request.content_type in ("application/x-www-form-urlencoded",
                                              "multipart/form-data"):
        form = await read_form(request)
        given = str(form.get("csrf_token", ""))
    return actor, not same_secret(given, actor.csrf_token)


@dataclass
class Call:
    """What an API handler gets: the request, the operator, the validated body."""

    request: web.Request
    actor: Actor
    body: Any = None
    query: Any = None

    @property
    def now(self) -> datetime:
        return now_of(self.request)

    @property
    def settings(self) -> Settings:
        return self.request.app[SETTINGS]

    @property
    def texts(self) -> Texts:
        return self.request.app[TEXTS]

    def int_param(self, name: str) -> int:
        value = self.request.match_info[name]
        if not value.isdigit():
            raise web.HTTPNotFound()
        return int(value)


Handler = Callable[[Call], Awaitable[web.StreamResponse]]


@dataclass
class Endpoint:
    method: str
    path: str
    role: Role
    summary: str
    handler: Handler
    tag: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    produces: str = "application/json"
    upload: bool = False
    statuses: dict[int, str] = field(default_factory=dict)
    response: Any = None  # the body's model: a BaseModel subclass or list[one]


class Api:
    """The route table, kept as data so the OpenAPI document is generated from it."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.endpoints: list[Endpoint] = []

    def route(self, method: str, path: str, *, role: Role, summary: str, tag: str,
              body: type[BaseModel] | None = None, query: type[BaseModel] | None = None,
              produces: str = "application/json", upload: bool = False,
              statuses: dict[int, str] | None = None,
              response: Any = None) -> Callable[[Handler], Handler]:
        """Register a handler; ``response`` is the model of its JSON body, which the OpenAPI
        document promises (a JSON route without one fails the document's tests)."""

        def register(handler: Handler) -> Handler:
            self.endpoints.append(Endpoint(method, self.prefix + path, role, summary, handler,
                                           tag, body, query, produces, upload, statuses or {},
                                           response))
            return handler
        return register

    def add_to(self, router: web.UrlDispatcher) -> None:
        for endpoint in self.endpoints:
            router.add_route(endpoint.method, endpoint.path, _wrap(endpoint))


def _wrap(endpoint: Endpoint) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The endpoint's handler behind the checks every route shares; what they refuse is
    raised, and answered as the API's JSON error by ``bot.web.errors``."""

    async def handle(request: web.Request) -> web.StreamResponse:
        actor, csrf_failed = await request_actor(request)
        if actor is None:
            raise Unauthorized("missing or invalid operator token or session")
        if csrf_failed:
            raise CsrfRefused("missing or wrong CSRF token")
        if not actor.may(endpoint.role):
            raise Forbidden(f"this needs the {endpoint.role.value} role")
        call = Call(request, actor)
        if endpoint.query is not None:
            try:
                call.query = endpoint.query.model_validate(dict(request.query))
            except ValidationError as exc:
                raise InvalidBody(validation_details(exc, ("query",))) from None
        if endpoint.body is not None:
            try:
                raw = await read_json(request)
            except UnreadableBody:
                raise InvalidBody([FieldProblem(path="body", message="not valid JSON",
                                                type="json_invalid")]) from None
            try:
                call.body = endpoint.body.model_validate(raw)
            except ValidationError as exc:
                raise InvalidBody(validation_details(exc)) from None
        return await endpoint.handler(call)

    handle.__name__ = endpoint.handler.__name__
    return handle


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status,
                             dumps=lambda v: json.dumps(v, ensure_ascii=False, default=str))
