"""Every response — console page, operator and partner API, static file, error page, health —
carries Referrer-Policy and X-Content-Type-Options, and HSTS when the public address is https."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.web.app import Overrides, build_app
from bot.web.operators.access import create_operator
from storage.operator_models import Role
from tests import factories as f

PATHS = ("/console/login", "/console/campaigns", "/api/v1/openapi.json", "/api/v1/me",
         "/api/v1/campaigns", "/api/v1/campaigns/999", "/api/v1/partner/vouchers/XXXX",
         "/healthz", "/readyz", "/metrics", "/no/such/page")


@pytest.mark.parametrize("public", ["http://127.0.0.1:8080", "https://ops.example.com"])
async def test_every_response_carries_the_security_headers(db: str, public: str) -> None:
    settings = f.settings_for(db_url=db, web={"public_base_url": public})
    app = build_app(settings, Overrides(run_dispatcher=False, run_scheduler=False,
                                        run_campaigns=False, manage_database=False))
    _, token = await create_operator("headers", Role.VIEWER)
    async with TestClient(TestServer(app)) as client:
        login = await (await client.get("/console/login")).text()
        static = login.split('<link rel="stylesheet" href="', 1)[1].split('"', 1)[0]
        for path in (*PATHS, static):
            for auth in ({}, {"Authorization": f"Bearer {token}"}):
                resp = await client.get(path, headers=auth, allow_redirects=False)
                await resp.read()
                assert resp.headers.get("Referrer-Policy") == "same-origin", (path, resp.status)
                assert resp.headers.get("X-Content-Type-Options") == "nosniff", path
                hsts = resp.headers.get("Strict-Transport-Security")
                if public.startswith("https://"):
                    assert hsts == "max-age=31536000", path
                else:
                    assert hsts is None, path
