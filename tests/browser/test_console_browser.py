"""The operator console in a real headless Chromium (Debian's chromium + chromium-driver,
driven by Selenium): log in, create a campaign, preview it, test-send it, start it and watch
the stats change while the real dispatcher delivers it to the fake Telegram and Twilio
servers; review a claim document and reject it. Screenshots go to artifacts/browser/.

The app runs in this test's event loop (a real TCP site on 127.0.0.1); Selenium is blocking,
so each browser step runs in a worker thread and waits for DOM conditions explicitly.
"""

from __future__ import annotations

import asyncio
import io
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web
from PIL import Image

from bot.documents import UploadLimits, store_document
from bot.web.app import Overrides, build_app
from bot.web.operators.access import create_operator
from storage.models import (
    Channel,
    Claim,
    Customer,
    Document,
    DocumentStatus,
    Message,
    MessageStatus,
)
from storage.operator_models import Campaign, CampaignStatus, Role
from tests import factories as f
from tests.fakes.telegram import FakeTelegram
from tests.fakes.twilio import SDK_WARNING_FILTERS, FakeTwilio

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "browser"
WAIT = 20.0

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
    pytest.skip("Debian's chromium and chromium-driver are not installed "
                "(apt-get install -y chromium chromium-driver)", allow_module_level=True)

from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = [pytest.mark.filterwarnings(w) for w in SDK_WARNING_FILTERS]

T = TypeVar("T")


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    profile = tempfile.mkdtemp(prefix="engage-chromium-")
    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-quic", "--no-first-run",
                 "--disable-component-update", "--disable-sync", "--window-size=1366,1000",
                 f"--user-data-dir={profile}", "--lang=zh-CN"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@dataclass
class Console:
    base: str
    token: str
    driver: WebDriver

    async def run(self, step: Callable[[WebDriver], T]) -> T:
        return await asyncio.to_thread(step, self.driver)

    def shot(self, driver: WebDriver, name: str) -> None:
        """A full-page screenshot: the window grows to the page's height first."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        height = int(driver.execute_script("return document.documentElement.scrollHeight"))
        driver.set_window_size(1366, min(max(height, 800), 4000))
        driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))
        driver.set_window_size(1366, 1000)


def wait(driver: WebDriver) -> WebDriverWait[WebDriver]:
    """Waits through a page being replaced: an element found on the page a click is leaving
    may go stale before it is read, and the condition is simply checked again."""
    return WebDriverWait(driver, WAIT, ignored_exceptions=(StaleElementReferenceException,))


@pytest.fixture
async def console(db: str, tmp_path: Path, fake_telegram: FakeTelegram,
                  fake_twilio: FakeTwilio, browser: WebDriver) -> AsyncIterator[Console]:
    settings = f.settings_for(
        db_url=db, telegram_base=fake_telegram.base_url, twilio_base=fake_twilio.base_url,
        uploads={"directory": str(tmp_path / "uploads")},
        delivery={"poll_interval_seconds": 0.2},
        operator={"campaign_poll_seconds": 0.2, "campaign_batch_ids": 3},
    )
    app = build_app(settings, Overrides(run_scheduler=False, manage_database=False,
                                        clock=lambda: f.NOON_SHANGHAI))
    _, token = await create_operator("王经理", Role.ADMIN, contact_phone="13912340000")
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


def _login(console: Console) -> Callable[[WebDriver], None]:
    def step(driver: WebDriver) -> None:
        driver.get(f"{console.base}/console/campaigns")
        wait(driver).until(ec.presence_of_element_located((By.ID, "token")))
        assert "/console/login" in driver.current_url
        console.shot(driver, "01-login")
        driver.find_element(By.ID, "token").send_keys(console.token)
        driver.find_element(By.ID, "login-submit").click()
        wait(driver).until(ec.presence_of_element_located((By.ID, "new-campaign")))
    return step


async def test_campaign_from_creation_to_delivery(console: Console,
                                                  fake_telegram: FakeTelegram,
                                                  fake_twilio: FakeTwilio) -> None:
    linked = [await f.customer(name=f"微信{n}") for n in range(3)]
    for c in linked:
        await f.link_telegram(c)
    sms_only = [await f.customer(name="Lee", language="en", phone=f"+1415555{n:04d}")
                for n in range(2)]
    contact = await Customer.get(phone="+8613912340000")  # the operator's own contact
    await f.link_telegram(contact, 990_001)

    await console.run(_login(console))

    def create(driver: WebDriver) -> str:
        driver.find_element(By.ID, "new-campaign").click()
        count = wait(driver).until(ec.presence_of_element_located((By.ID, "audience-count")))
        wait(driver).until(lambda d: count.get_attribute("data-ready") == "yes")
        assert count.text == "5"
        driver.find_element(By.ID, "name").send_keys("冬季行车关怀")
        driver.find_element(By.ID, "template_zh").send_keys(
            "{name}，{company}提醒您：冬季路滑，请减速慢行。")
        driver.find_element(By.ID, "template_en").send_keys(
            "{name}, {company}: roads are icy, drive slowly.")
        driver.find_element(By.CSS_SELECTOR, "input[name=languages][value=en]").click()
        wait(driver).until(lambda d: count.text == "2")
        driver.find_element(By.CSS_SELECTOR, "input[name=languages][value=en]").click()
        wait(driver).until(lambda d: count.text == "5")
        console.shot(driver, "02-campaign-form")
        driver.find_element(By.ID, "create-campaign").click()
        wait(driver).until(ec.presence_of_element_located((By.ID, "preview")))
        assert driver.find_element(By.ID, "preview-audience").text == "5"
        assert driver.find_element(By.ID, "preview-telegram").text == "3"
        assert driver.find_element(By.ID, "preview-sms").text == "2"
        samples = driver.find_elements(By.CSS_SELECTOR, "#samples .sample .text")
        assert len(samples) == 3 and samples[0].text.startswith("微信0，安行保险提醒您")
        console.shot(driver, "03-campaign-preview")
        driver.find_element(By.ID, "action-test").click()
        wait(driver).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".flash.ok")))
        return driver.current_url.split("?")[0].rsplit("/", 1)[-1]

    campaign_id = int(await console.run(create))
    campaign = await Campaign.get(id=campaign_id)
    assert campaign.status == CampaignStatus.DRAFT and campaign.created_by_id is not None
    await _until(lambda: any(m["chat_id"] == 990_001 for m in fake_telegram.sent_messages()))
    assert await Message.filter(campaign_id=campaign_id).count() == 0  # a test is no send

    def start(driver: WebDriver) -> None:
        driver.find_element(By.ID, "action-start").click()
        wait(driver).until(ec.text_to_be_present_in_element((By.ID, "stat-sent"), "5"))
        wait(driver).until(lambda d: d.find_element(
            By.ID, "delivery-progress").get_attribute("value") == "1")
        console.shot(driver, "04-campaign-sent")

    await console.run(start)
    chats = {m["chat_id"] for m in fake_telegram.sent_messages()}
    assert {700_000 + c.id for c in linked} <= chats
    texts = [m["text"] for m in fake_telegram.sent_messages() if m["chat_id"] != 990_001]
    assert "微信1，安行保险提醒您：冬季路滑，请减速慢行。" in texts
    assert sorted(r.to or "" for r in fake_twilio.sent_messages()) == [c.phone for c in sms_only]
    # English to numbers outside the mainland: the English signature (GSM-7).
    assert all((r.body or "").startswith("[Anxing Insurance] Lee, Anxing Insurance: roads are icy")
               for r in fake_twilio.sent_messages())
    sent = await Message.filter(campaign_id=campaign_id, status=MessageStatus.SENT).count()
    assert sent == 5
    await _until_async(lambda: _status_is(campaign_id, CampaignStatus.DONE))


async def test_reviewer_rejects_a_document_and_the_customer_is_asked_again(
        console: Console, fake_telegram: FakeTelegram, tmp_path: Path) -> None:
    owner = await f.customer(name="孙八")
    await f.link_telegram(owner, 880_001)
    policy = await f.policy(owner)
    claim = await Claim.create(number="C2026-0042", policy=policy, customer=owner,
                               reported_at=f.NOON_SHANGHAI - timedelta(days=1))
    image = io.BytesIO()
    Image.new("RGB", (800, 600), (40, 90, 160)).save(image, "JPEG")
    limits = UploadLimits(max_bytes=10_000_000, max_pixels=40_000_000,
                          directory=tmp_path / "uploads")
    document, _ = await store_document(customer_id=owner.id, claim_id=claim.id,
                                       channel=Channel.TELEGRAM, data=image.getvalue(),
                                       original_name="现场照片.jpg", limits=limits,
                                       now=f.NOON_SHANGHAI)
    await console.run(_login(console))

    def review(driver: WebDriver) -> None:
        driver.get(f"{console.base}/console/claims")
        wait(driver).until(ec.presence_of_element_located((By.ID, "claim-list")))
        driver.find_element(By.LINK_TEXT, claim.number).click()
        card = wait(driver).until(ec.presence_of_element_located(
            (By.ID, f"document-{document.id}")))
        thumb = card.find_element(By.CSS_SELECTOR, "img.thumb")
        wait(driver).until(lambda d: d.execute_script(
            "return arguments[0].complete && arguments[0].naturalWidth > 0", thumb))
        console.shot(driver, "05-claim-documents")
        card.find_element(By.CSS_SELECTOR, "input.reason").send_keys("照片模糊，请重拍")
        card.find_element(By.CSS_SELECTOR, "button.reject").click()
        wait(driver).until(lambda d: d.find_element(
            By.ID, f"document-{document.id}").get_attribute("data-status") == "rejected")
        assert driver.find_element(By.CSS_SELECTOR, ".flash.ok").is_displayed()
        console.shot(driver, "06-document-rejected")

    await console.run(review)
    stored = await Document.get(id=document.id)
    assert stored.status == DocumentStatus.REJECTED and stored.reason == "照片模糊，请重拍"
    await _until(lambda: any(m["chat_id"] == 880_001 for m in fake_telegram.sent_messages()))
    [asked] = [m["text"] for m in fake_telegram.sent_messages() if m["chat_id"] == 880_001]
    assert "C2026-0042" in asked and "照片模糊，请重拍" in asked and "重新上传" in asked


async def _status_is(campaign_id: int, status: CampaignStatus) -> bool:
    return (await Campaign.get(id=campaign_id)).status == status


async def _until(condition: Callable[[], bool]) -> None:
    async def check() -> bool:
        return condition()
    await _until_async(check)


async def _until_async(condition: Callable[[], Any]) -> None:
    """Poll a condition on the event loop (the app keeps running meanwhile), for WAIT s."""
    async with asyncio.timeout(WAIT):
        while not await condition():  # noqa: ASYNC110 - fakes and DB have no event to await
            await asyncio.sleep(0.05)
