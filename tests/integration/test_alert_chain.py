"""The alert chain on the real stack: MQTT -> bridge -> Kafka -> Faust worker -> alert-events -> notifiers,
the duty console in headless Chromium, and the audit chain, with the worker's clock injected through a file.

One story, as a duty officer lives it: a tank overfills; the control room's WeCom group is paged; nobody
answers, so the responsible persons get SMS; the worker is SIGKILLed; the new worker pages the district
bureau exactly when its deadline falls (not a second early, and nobody twice); the district duty officer
acknowledges in the console, and the escalation stops: the city is never paged.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from alerts import audit
from alerts.console.users import init_users
from alerts.model import delivery_id
from hazardwatch.registry import load_registry
from tests import console_driver as ui
from tests.receivers import SECRETS, Receivers

pytestmark = pytest.mark.integration
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
SENSOR, TOPIC = "S01-T01-LT", "E01/S01/S01-T01-LT"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def events(st) -> list[dict]:
    # Playwright's sync API keeps an event loop running on this thread; the Kafka read gets its own thread.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(st.read_topic, "alert-events", 1.0).result()


def pages(st, tier: int | None = None) -> list[dict]:
    evs = events(st)
    return [e for e in evs if e["kind"] == "page" and (tier is None or e["page"]["tier"] == tier)]


def test_escalation_survives_a_worker_kill_and_stops_when_acknowledged_in_the_console(stack_factory, tmp_path):
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian chromium is not installed (apt-get install chromium); deploy/local/install.sh does it")
    from playwright.sync_api import sync_playwright

    rx = Receivers()
    clock = tmp_path / "clock"
    t0 = int(time.time() * 1000)
    clock.write_text(str(t0))
    (tmp_path / "notify.yaml").write_text(rx.notify_yaml(), encoding="utf-8")
    users_file = tmp_path / "console-users.yaml"
    env = {"HW_CLOCK_FILE": str(clock), "HW_NOTIFY_CONFIG": str(tmp_path / "notify.yaml"),
           "HW_AUDIT_PATH": str(tmp_path / "audit.jsonl"), "HW_CONSOLE_USERS": str(users_file), **SECRETS}
    st = stack_factory(**env)
    reg = load_registry(st.s.registry_path)
    passwords = init_users(users_file, reg)
    port = free_port()
    st.start("console", "serve", "--port", str(port), ready="console: listening")
    st.bridge()
    worker = st.worker()

    def tick_to(seconds: int) -> None:
        clock.write_text(str(t0 + seconds * 1000))

    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(ui.CHROMIUM), headless=True, args=ui.LAUNCH_ARGS)
            officer = browser.new_page(viewport={"width": 1600, "height": 1000})
            ui.login(officer, f"http://127.0.0.1:{port}", "d01-duty", passwords["d01-duty"])
            other = browser.new_page()
            ui.login(other, f"http://127.0.0.1:{port}", "e02-operator", passwords["e02-operator"])

            # 1. The tank goes over H and HH: one alert (orange), control room's WeCom group paged.
            gw = st.publisher("e01")
            st.publish(gw, TOPIC, {"ts": int(time.time()), "v": 95.2})
            raised = st.wait_for("the alert's tier-0 page", lambda: pages(st, 0), timeout=90)
            alert_id = raised[0]["alert_id"]
            row = ui.wait_for_alert(officer, alert_id, timeout=30)  # pushed: the page was never reloaded
            assert "95.2" in row.inner_text()
            st.wait_for("WeCom delivery to E01's group", lambda: rx.hits("/wecom"), timeout=30)
            assert all(h["query"]["key"] == "test-wecom-1" for h in rx.hits("/wecom"))

            # 2. Nobody acknowledges for 5 minutes: the responsible persons get SMS, once each. (The control
            #    room's repeats at 120 and 240 s are overtaken: the clock jumps straight to the deadline.)
            tick_to(300)
            st.wait_for("SMS to the three responsible persons", lambda: len(rx.hits("/sms")) >= 3, timeout=30)
            tier1 = pages(st, 1)
            assert [(e["page"]["repeat"], e["action"]) for e in tier1] == [(0, "escalate")]

            # 3. The worker dies mid-escalation; a new one starts 1 s before the district's deadline (900 s).
            time.sleep(2)  # let the checkpoint of step 2 be committed
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(10)
            tick_to(899)
            st.worker()
            time.sleep(8)
            assert rx.hits("/dingtalk") == [], "the district was paged before its deadline"
            tick_to(900)
            st.wait_for("DingTalk page to the district bureau", lambda: rx.hits("/dingtalk"), timeout=60)
            tier2 = st.wait_for("tier-2 page event", lambda: pages(st, 2), timeout=30)
            assert [e["ts_ms"] for e in tier2] == [t0 + 900_000]  # on time by the injected clock

            # 4. The district duty officer acknowledges in the console; the escalation stops.
            ui.wait_for_state(officer, alert_id, "UNACK", timeout=30)
            ui.ack(officer, alert_id)
            ui.wait_for_state(officer, alert_id, "ACKED", timeout=30)
            officer.locator(f'tr[data-alert-id="{alert_id}"] [data-testid="alert-next"][data-stopped="1"]') \
                .wait_for(timeout=15_000)
            ui.screenshot(officer, ARTIFACTS / "console-duty-officer-acked.png")
            tick_to(2200)  # past the city's deadline had nobody acknowledged (2100 s)
            time.sleep(6)
            assert pages(st, 3) == [] and rx.hits("/hook") == []

            # 5. Enterprise E02's operator never saw E01's alert and cannot acknowledge it.
            assert other.locator(f'[data-alert-id="{alert_id}"]').count() == 0
            status = other.evaluate(
                """async (id) => {
                    const me = await (await fetch('/api/me')).json();
                    const r = await fetch(`/api/alerts/${id}/ack`, {method: 'POST',
                        headers: {'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf || ''},
                        body: JSON.stringify({reason: 'not mine'})});
                    return r.status; }""", alert_id)
            assert status == 404
            browser.close()

        # Nobody was paged twice: every delivery id reached its receiver once.
        all_pages = pages(st)
        assert len({e["page"]["page_id"] for e in all_pages}) == len(all_pages)
        sms_ids = [h["json"]["id"] for h in rx.hits("/sms")]
        assert len(sms_ids) == len(set(sms_ids)), "an SMS was sent twice"
        ours = [e for e in all_pages if e["alert_id"] == alert_id]
        tier1 = [e for e in ours if e["page"]["tier"] == 1]
        expected = {delivery_id(e["page"]["page_id"], r["name"], "sms") for e in tier1 for r in e["page"]["recipients"]}
        # The gauge sent one reading, so against the injected clock it also falls silent: its offline alert
        # (yellow) pages the responsible persons on its own chain. Those SMS are its own, never ours twice.
        others = {delivery_id(e["page"]["page_id"], r["name"], "sms") for e in all_pages
                  if e["alert_id"] != alert_id and e["page"]["tier"] == 1 for r in e["page"]["recipients"]}
        assert len(expected) == 3 * len(tier1) and expected.isdisjoint(others)
        assert set(sms_ids) == expected | others
        assert [e["page"]["tier"] for e in ours if e["action"] != "repeat"] == [0, 0, 1, 2]
        assert len(rx.hits("/dingtalk")) == len([e for e in all_pages if e["page"]["tier"] == 2]) == 1

        # Every step is in the hash chain, which verifies.
        def chain_complete() -> list[dict]:
            recs = list(audit.read_records(tmp_path / "audit.jsonl"))
            return recs if any(r["action"] == "ack" for r in recs) else []

        recs = st.wait_for("the acknowledgement in the audit chain", chain_complete, timeout=30)
        verdict = audit.verify(tmp_path / "audit.jsonl")
        assert verdict.ok, verdict.problem
        actions = [r["action"] for r in recs if r["alert_id"] == alert_id]
        for step in ("raise", "upgrade", "escalate", "delivered", "ack"):
            assert step in actions, (step, actions)
        ack_rec = next(r for r in recs if r["action"] == "ack")
        assert ack_rec["actor"] == "d01-duty"
    finally:
        rx.close()


def test_a_command_for_another_source_is_refused_by_the_worker(stack_factory, tmp_path):
    """Defence in depth: even a command that bypasses the console is judged against the alert's own source."""
    st = stack_factory(HW_AUDIT_PATH=str(tmp_path / "audit.jsonl"))
    st.worker()

    async def send() -> None:
        prod = AIOKafkaProducer(bootstrap_servers=st.s.kafka_bootstrap, acks="all")
        await prod.start()
        try:
            cmd = {"command_id": "x1", "action": "ack", "alert_id": "nope", "source": "S02", "user": "mallory",
                   "role": "enterprise", "ts_ms": 0}
            await prod.send_and_wait(st.s.topic("alert-commands"), orjson.dumps(cmd), key=b"S02")
        finally:
            await prod.stop()

    asyncio.run(send())
    rejected = st.wait_for("the rejected command event",
                           lambda: [e for e in events(st) if e["kind"] == "rejected"],
                           timeout=60)
    assert rejected[0]["actor"] == "mallory" and "no open alert" in rejected[0]["reason"]
