"""Console charts: valid SVG with the figures and labels given, served as a sandboxed image."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.web import charts

SVG = "{http://www.w3.org/2000/svg}"


def _texts(svg: bytes) -> list[str]:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return ["".join(node.itertext()) for node in root.iter(f"{SVG}text")]


def test_a_bar_chart_shows_its_chinese_labels_and_percentages() -> None:
    svg = charts.bar("续保率（按月）", ["2026-01", "2026-02"], {"续保率": [0.5, 0.625]},
                     percent=True)
    texts = _texts(svg)
    assert "续保率（按月）" in texts
    assert {"2026-01", "2026-02"} <= set(texts)
    assert b"kozea.github.io" not in svg  # no tooltip script fetched from elsewhere


def test_a_line_chart_draws_its_target_as_a_dashed_series() -> None:
    svg = charts.line("Satisfaction", ["W1", "W2", "W3"], {"Satisfied": [0.9, None, 0.97]},
                      percent=True, target=("Target 95%", 0.95))
    texts = _texts(svg)
    assert "Target 95%" in texts and "Satisfied" in texts
    assert b"serie-1{stroke-dasharray:6,4}" in svg  # the target (second series) is dashed


async def test_a_chart_is_served_as_an_image_allowing_only_its_own_styles() -> None:
    async def chart(request: web.Request) -> web.Response:
        return charts.svg_response(charts.bar("t", ["a"], {"s": [1.0]}))

    app = web.Application()
    app.router.add_get("/chart.svg", chart)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/chart.svg")
        assert response.status == 200
        assert response.content_type == "image/svg+xml"
        policy = response.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "script" not in policy
        _texts(await response.read())
