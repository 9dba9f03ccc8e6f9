"""The conversations inbox in a real headless Chromium (same rig as test_console_browser):
a customer hands off in Telegram, the operator opens the queue, sees the thread, a new
message appears without a reload, a quick reply goes into the box, the operator types and
sends a reply, and the dispatcher delivers it to the fake Telegram. An SMS thread shows the
segment count of the reply being typed. Screenshots go to artifacts/browser/."""

from __future__ import annotations

from datetime import timedelta

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec

from bot.desk.threads import Desk, Sender
from storage.desk_models import Conversation, ConversationStatus, HandoffReason
from storage.models import Channel
from tests import factories as f
from tests.browser import test_console_browser as console_rig
from tests.browser.test_console_browser import Console, _login, _until, wait
from tests.fakes.telegram import FakeTelegram

browser = console_rig.browser  # the same headless Chromium, app and fakes
console = console_rig.console
pytestmark = console_rig.pytestmark

REPLY = "李先生您好，您的理赔已加急处理，预计明天到账。"


async def test_an_operator_answers_a_handed_off_customer_from_the_inbox(
        console: Console, fake_telegram: FakeTelegram) -> None:
    desk = Desk(f.settings_for())
    owner = await f.customer(name="李四")
    await f.link_telegram(owner, 660_001)
    talk = await desk.inbound(Sender.of_customer(owner.id), Channel.TELEGRAM, "转人工",
                              handoff=HandoffReason.BUTTON, now=f.NOON_SHANGHAI)
    sms_customer = await f.customer(name="赵六", phone="+8613800009999")
    sms_talk = await desk.inbound(Sender.of_customer(sms_customer.id), Channel.SMS, "人工",
                                  handoff=HandoffReason.KEYWORD,
                                  now=f.NOON_SHANGHAI + timedelta(minutes=1))
    await console.run(_login(console))

    def open_thread(driver: WebDriver) -> None:
        driver.get(f"{console.base}/console/inbox")
        row = wait(driver).until(ec.presence_of_element_located(
            (By.ID, f"thread-{talk.conversation_id}")))
        assert "李四" in row.text
        rows = driver.find_elements(By.CSS_SELECTOR, "#inbox-list tbody tr")
        assert [r.get_attribute("id") for r in rows] == [
            f"thread-{talk.conversation_id}", f"thread-{sms_talk.conversation_id}"]
        console.shot(driver, "20-inbox-waiting")
        row.find_element(By.TAG_NAME, "a").click()
        wait(driver).until(ec.presence_of_element_located((By.ID, "reply-text")))
        assert "转人工" in driver.find_element(By.ID, "messages").text

    await console.run(open_thread)
    # the customer writes again while the page is open: it appears without a reload
    await desk.inbound(Sender.of_customer(owner.id), Channel.TELEGRAM, "还在吗？",
                       now=f.NOON_SHANGHAI + timedelta(minutes=2))

    def answer(driver: WebDriver) -> None:
        wait(driver).until(ec.text_to_be_present_in_element((By.ID, "messages"), "还在吗？"))
        driver.find_element(By.CSS_SELECTOR, ".quick-reply").click()
        box = driver.find_element(By.ID, "reply-text")
        assert box.get_attribute("value") == "您好，我是客服，很高兴为您服务。请问有什么可以帮您？"
        box.clear()
        box.send_keys(REPLY)
        console.shot(driver, "21-inbox-reply-typed")
        driver.find_element(By.ID, "reply-send").click()
        wait(driver).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".flash.ok")))
        wait(driver).until(ec.text_to_be_present_in_element((By.ID, "messages"), REPLY))
        console.shot(driver, "22-inbox-reply-sent")

    await console.run(answer)
    await _until(lambda: any(m["chat_id"] == 660_001 and m["text"] == REPLY
                             for m in fake_telegram.sent_messages()))
    thread = await Conversation.get(id=talk.conversation_id)
    assert thread.status is ConversationStatus.HELD and thread.first_response_at is not None

    def sms_segments(driver: WebDriver) -> None:
        driver.get(f"{console.base}/console/inbox/{sms_talk.conversation_id}")
        box = wait(driver).until(ec.presence_of_element_located((By.ID, "reply-text")))
        info = driver.find_element(By.ID, "reply-info")
        box.send_keys("您好，已收到。")
        wait(driver).until(lambda d: info.get_attribute("data-segments") == "1")
        box.send_keys("请" * 70)
        wait(driver).until(lambda d: info.get_attribute("data-segments") == "2")
        assert "2" in info.text
        console.shot(driver, "23-inbox-sms-segments")

    await console.run(sms_segments)
