"""Page object for the duty console, driven with Playwright's sync API (shared by the browser and full-stack tests).

Everything is located by data-testid / data-alert-id, never by visible text, so the same calls work in Chinese
and in English.
"""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Locator, Page

CHROMIUM = Path("/usr/bin/chromium")  # Debian's build: tests never download a browser
LAUNCH_ARGS = ["--no-sandbox"]


def login(page: Page, base_url: str, user: str, pw: str, timeout: float = 15.0) -> None:
    """Log in through the form and wait until the live stream is connected (the first snapshot arrived)."""
    page.goto(base_url.rstrip("/") + "/")
    page.get_by_test_id("login-user").fill(user)
    page.get_by_test_id("login-password").fill(pw)
    page.get_by_test_id("login-submit").click()
    page.locator("#app-view").wait_for(state="visible", timeout=timeout * 1000)
    page.locator('[data-testid="conn-status"][data-state="live"]').wait_for(timeout=timeout * 1000)


def alert_row(page: Page, alert_id: str) -> Locator:
    """The alert's row wherever it is listed (main queue, shelved/suppressed list or recently closed)."""
    return page.locator(f'tr[data-alert-id="{alert_id}"]')


def wait_for_alert(page: Page, alert_id: str | None = None, *, text: str | None = None,
                   timeout: float = 10.0) -> Locator:
    """Wait for a row in the main queue by alert id, or by a piece of its text in the current language."""
    if alert_id:
        row = page.locator(f'[data-testid="alert-row"][data-alert-id="{alert_id}"]')
    else:
        row = page.get_by_test_id("alert-row").filter(has_text=text)
    row.first.wait_for(state="visible", timeout=timeout * 1000)
    return row.first


def ack(page: Page, alert_id: str) -> None:
    alert_row(page, alert_id).get_by_test_id("ack-button").click()


def alert_state(page: Page, alert_id: str) -> str:
    """The ISA-18.2 state code (UNACK, ACKED, ...) the row shows."""
    return alert_row(page, alert_id).get_by_test_id("alert-state").get_attribute("data-state") or ""


def wait_for_state(page: Page, alert_id: str, state: str, timeout: float = 10.0) -> None:
    page.locator(f'tr[data-alert-id="{alert_id}"] [data-testid="alert-state"][data-state="{state}"]').wait_for(
        timeout=timeout * 1000)


def next_step(page: Page, alert_id: str) -> Locator:
    """The escalation next-step cell: a countdown, or data-stopped="1" once escalation has stopped."""
    return alert_row(page, alert_id).get_by_test_id("alert-next")


def screenshot(page: Page, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    return path
