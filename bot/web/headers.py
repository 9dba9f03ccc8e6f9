"""Headers every response carries: the console, the operator and partner APIs, webhooks,
health and metrics, static files and error pages alike.

``Referrer-Policy: same-origin`` keeps console URLs (which carry claim numbers and search
text) out of the Referer sent to other sites; ``X-Content-Type-Options: nosniff`` stops a
browser from running an uploaded document or a JSON body as something else; behind a public
https address, ``Strict-Transport-Security`` keeps browsers on https. A handler that sets
one of them itself keeps its own value.
"""

from __future__ import annotations

from aiohttp import web

HSTS_SECONDS = 365 * 24 * 3600


def setup(app: web.Application, *, public_base_url: str) -> None:
    fixed = {"Referrer-Policy": "same-origin", "X-Content-Type-Options": "nosniff"}
    if public_base_url.startswith("https://"):
        fixed["Strict-Transport-Security"] = f"max-age={HSTS_SECONDS}"

    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        for name, value in fixed.items():
            response.headers.setdefault(name, value)

    app.on_response_prepare.append(add_headers)
