"""The renewal worklist and KPI page in a real headless Chromium: claim two policies in bulk
from the worklist, then read the KPI page in Chinese and in English — every chart image loads
(the console's CSP holds: no script, the SVG is an image) and draws (the screenshot of each
chart has ink on it). Screenshots go to artifacts/browser/."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import web
from PIL import Image
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec

from bot.web.app import Overrides, build_app
from bot.web.operators.access import create_operator
from storage.models import Policy
from storage.operator_models import Role
from tests import factories as f
from tests.browser import test_console_browser as console_browser
from tests.browser.test_console_browser import Console, wait
from tests.test_renewal_kpis import fixtures

browser = console_browser.browser
TODAY = f.NOON_SHANGHAI.date()


@pytest.fixture
async def desk(db: str, tmp_path: Path, browser: WebDriver) -> AsyncIterator[Console]:
    settings = f.settings_for(db_url=db, uploads={"directory": str(tmp_path / "uploads")})
    app = build_app(settings, Overrides(run_scheduler=False, run_dispatcher=False,
                                        run_campaigns=False, manage_database=False,
                                        clock=lambda: f.NOON_SHANGHAI))
    _, token = await create_operator("钱经理", Role.AGENT, branch="310100", manager=True)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    browser.delete_all_cookies()
    try:
        yield Console(f"http://127.0.0.1:{port}", token, browser)
    finally:
        await runner.cleanup()


def login(console: Console, driver: WebDriver, page: str) -> None:
    driver.get(f"{console.base}{page}")
    wait(driver).until(ec.presence_of_element_located((By.ID, "token")))
    driver.find_element(By.ID, "token").send_keys(console.token)
    driver.find_element(By.ID, "login-submit").click()
    wait(driver).until(ec.presence_of_element_located((By.ID, "renewal-tabs")))


def ink(png: bytes) -> float:
    """The share of pixels that are not (near) white."""
    image = Image.open(io.BytesIO(png)).convert("L")
    histogram = image.histogram()
    return sum(histogram[:230]) / (image.width * image.height)


async def test_worklist_claim_and_kpi_charts_in_both_languages(desk: Console) -> None:
    await fixtures()
    due = [await f.policy(await f.customer(name=f"续保客户{n}"), branch="310100",
                          end=TODAY + timedelta(days=5 + n), agent="王五" if n else "")
           for n in range(3)]

    def worklist(driver: WebDriver) -> None:
        login(desk, driver, "/console/renewals?lang=zh-CN")
        rows = driver.find_elements(By.CSS_SELECTOR, "#renewal-list tbody tr")
        assert len(rows) == 4  # and the KPI fixtures' policy expiring on 25 November
        first = driver.find_element(By.ID, f"renewal-{due[0].id}").text
        assert "续保客户0" in first and "公共池" in first
        for policy in due[:2]:
            driver.find_element(By.CSS_SELECTOR,
                                f"input[name=policy_id][value='{policy.id}']").click()
        desk.shot(driver, "renewal-01-worklist")
        driver.find_element(By.CSS_SELECTOR, "#bulk-claim button[type=submit]").click()
        wait(driver).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".flash.ok")))
        assert "已认领" in driver.find_element(By.CSS_SELECTOR, ".flash.ok").text
        desk.shot(driver, "renewal-02-claimed")

    await desk.run(worklist)
    assert [p.owner for p in await Policy.filter(id__in=[p.id for p in due]).order_by(
        "end_date")] == ["钱经理", "钱经理", ""]

    def kpis(lang: str, title: str) -> None:
        def step(driver: WebDriver) -> None:
            driver.get(f"{desk.base}/console/renewals/kpis?lang={lang}")
            wait(driver).until(ec.presence_of_element_located((By.ID, "kpi-months")))
            images = driver.find_elements(By.CSS_SELECTOR, ".charts img")
            assert len(images) == 4
            wait(driver).until(lambda d: all(
                d.execute_script("return arguments[0].complete && "
                                 "arguments[0].naturalWidth > 0", img) for img in images))
            assert title in driver.find_element(By.TAG_NAME, "h2").text
            desk.shot(driver, f"renewal-03-kpis-{lang}")
            for n, img in enumerate(images):
                driver.execute_script("arguments[0].scrollIntoView()", img)
                assert ink(img.screenshot_as_png) > 0.01, (lang, n)
            driver.get(f"{desk.base}/console/renewals/kpis/months.svg?lang={lang}")
            desk.shot(driver, f"renewal-04-chart-{lang}")
        return step

    await desk.run(kpis("zh-CN", "续保率（按到期月）"))
    await desk.run(kpis("en", "Renewal rate by expiry month"))
