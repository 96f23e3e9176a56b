"""The duty console in headless Chromium: a new alert appears without a reload, is acknowledged, and never shows
up in another enterprise's browser. Screenshots are kept under tests/artifacts/ for review.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from alerts.console.users import User
from hazardwatch.registry import Registry
from tests import console_driver as drv
from tests.unit.test_console import T0, Harness, event, make_accounts, snapshot

pytestmark = pytest.mark.browser
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


class ServerThread:
    """The console app on its own event loop in a thread, so the sync Playwright API can drive it from this one."""

    def __init__(self, app: web.Application):
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.port = 0
        self.thread = threading.Thread(target=self._run, name="console-test-server", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        runner = web.AppRunner(self.app, shutdown_timeout=2)
        self.loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = runner.addresses[0][1]
        self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(runner.cleanup())
        self.loop.close()

    def start(self) -> str:
        self.thread.start()
        assert self.ready.wait(10), "console test server did not start"
        return f"http://127.0.0.1:{self.port}"

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run fn on the server's loop (the board's queues belong to it) and return its result."""
        async def _call() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(_call(), self.loop).result(5)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def accounts(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, User], dict[str, str]]:
    return make_accounts(registry, tmp_path_factory.mktemp("console-browser"))


@pytest.fixture()
def console(registry: Registry, accounts: tuple[dict[str, User], dict[str, str]]
            ) -> Iterator[tuple[Harness, ServerThread, str]]:
    h = Harness(registry, accounts[0])
    # Something already on the board before anyone logs in: an older yellow E01 alert and an E02 one.
    h.feed(snapshot(registry, "OLD-E01", "S02", 3, raised_ms=T0 - 600_000),
           snapshot(registry, "OLD-E02", "S03", 2, raised_ms=T0 - 300_000))
    server = ServerThread(h.app)
    url = server.start()
    try:
        yield h, server, url
    finally:
        server.stop()


def _wait(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


@pytest.mark.skipif(not drv.CHROMIUM.exists(), reason=f"{drv.CHROMIUM} not found: apt-get install chromium "
                    "(the browser test never downloads one)")
def test_duty_officer_sees_new_alert_live_and_acknowledges_it(
        registry: Registry, accounts: tuple[dict[str, User], dict[str, str]],
        console: tuple[Harness, ServerThread, str]) -> None:
    from playwright.sync_api import sync_playwright

    h, server, url = console
    pws = accounts[1]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(drv.CHROMIUM), headless=True, args=drv.LAUNCH_ARGS)
        try:
            officer = browser.new_context(viewport={"width": 1500, "height": 1000}).new_page()
            other = browser.new_context(viewport={"width": 1500, "height": 1000}).new_page()
            errors: list[str] = []
            officer.on("pageerror", lambda e: errors.append(str(e)))
            drv.login(officer, url, "d01-duty", pws["d01-duty"])
            drv.login(other, url, "e02-operator", pws["e02-operator"])
            drv.wait_for_alert(officer, "OLD-E01")
            drv.wait_for_alert(other, "OLD-E02")
            assert officer.get_by_test_id("map-source").count() == 5  # D01's sources, drawn offline
            # A marker in the page's JS state: if the page reloaded, it would be gone.
            officer.evaluate("window.__noReload = 42")

            red = snapshot(registry, "NEW-E01", "S01", 1, raised_ms=T0 + 30_000)
            server.call(h.board.apply, event(red))
            row = drv.wait_for_alert(officer, "NEW-E01")
            assert officer.evaluate("window.__noReload") == 42
            assert drv.alert_state(officer, "NEW-E01") == "UNACK"
            assert "红色预警" in row.get_by_test_id("alert-text").inner_text()
            assert officer.locator('[data-source-id="S01"]').get_attribute("data-level") == "1"
            # The new alert is the most severe: it heads the queue.
            assert officer.get_by_test_id("alert-row").first.get_attribute("data-alert-id") == "NEW-E01"
            assert drv.next_step(officer, "NEW-E01").get_attribute("data-stopped") is None

            drv.ack(officer, "NEW-E01")
            _wait(lambda: len(h.commands) == 1)
            cmd = h.commands[0]
            assert (cmd["action"], cmd["alert_id"], cmd["source"], cmd["user"]) == ("ack", "NEW-E01", "S01", "d01-duty")
            officer.get_by_test_id("toast").wait_for(state="visible")

            # The manager's answer arrives as an event: the row turns ACKED and escalation stops.
            acked = {**red, "state": "ACKED", "acked": True, "acked_by": "d01-duty", "acked_ms": T0 + 40_000,
                     "updated_ms": T0 + 40_000,
                     "escalation": {**red["escalation"], "next_ms": None, "stopped": "acked"}}
            server.call(h.board.apply, event(acked, "ack", "command", actor="d01-duty"))
            drv.wait_for_state(officer, "NEW-E01", "ACKED")
            nxt = drv.next_step(officer, "NEW-E01")
            assert nxt.get_attribute("data-stopped") == "1"
            assert "已停止" in nxt.inner_text()
            assert "报警已确认" in drv.alert_row(officer, "NEW-E01").get_by_test_id("alert-state").inner_text()
            assert drv.alert_row(officer, "NEW-E01").get_by_test_id("ack-button").count() == 0
            assert officer.evaluate("window.__noReload") == 42

            # Map -> source -> sensor -> trend with its threshold lines, read through the trend callable.
            officer.locator('[data-testid="map-source"][data-source-id="S01"]').click()
            officer.locator('[data-testid="sensor-item"][data-sensor-id="S01-T01-LT"]').click()
            officer.get_by_test_id("trend-line").wait_for()
            assert officer.get_by_test_id("trend-limit").count() == 4
            assert h.trend_calls[-1][0] == "S01-T01-LT"
            drv.screenshot(officer, ARTIFACTS / "console-d01-ack.png")

            # The E02 operator's page is live (its own new alert arrives) but never shows E01's.
            server.call(h.board.apply, event(snapshot(registry, "NEW-E02", "S03", 3, raised_ms=T0 + 50_000)))
            drv.wait_for_alert(other, "NEW-E02")
            assert drv.alert_row(other, "NEW-E01").count() == 0
            assert drv.alert_row(other, "OLD-E01").count() == 0
            html = other.content()
            assert "NEW-E01" not in html and registry.sources["S01"].name_zh not in html
            assert other.get_by_test_id("map-source").count() == 1
            drv.screenshot(other, ARTIFACTS / "console-e02.png")

            # English toggle re-labels without reloading.
            officer.get_by_test_id("lang-toggle").click()
            assert "acknowledged" in drv.alert_row(officer, "NEW-E01").get_by_test_id("alert-state").inner_text()
            assert errors == []
        finally:
            browser.close()
