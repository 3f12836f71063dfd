"""The dashboard in a real browser (Debian's chromium, driven by Playwright for Python).

Run by tests/dashboard_browser.rs, which starts the local stack, seeds it and reads this
script's stdout. One JSON argument: {url, supervisor, worker, patient, village, emergency,
shots, docs, views} (views: which pages to screenshot). Protocol on stdout/stdin (one line each):
  -> READY            the board (supervisor) and the inbox (worker) are open and signed in
  <- POSTED           the test posted readings that alert
  -> ACKED <alertId>  the alert appeared on the board and in the inbox; Acknowledge clicked
  -> DONE             the views changed; screenshots saved
Any failed expectation raises (exit status 1) with Playwright's message on stderr.
"""

import json
import shutil
import sys
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

ARGS = json.loads(sys.argv[1])
URL = ARGS["url"].rstrip("/") + "/"
SHOTS = Path(ARGS["shots"])
DOCS = Path(ARGS["docs"]) if ARGS.get("docs") else None
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 360, "height": 740}


def say(line):
    print(line, flush=True)


def sign_in(page, username, role):
    page.goto(URL + "#/signin")
    expect(page.locator(".local-only")).to_be_visible()
    page.fill("#username", username)
    page.select_option("#role", role)
    page.click("#signin")
    expect(page.locator("#who")).to_contain_text(username)


def card(page, alert_id):
    return page.locator(f'li.alert[data-alert="{alert_id}"]')


def wait_acknowledged_or_gone(page, alert_id, timeout):
    try:
        _wait_acknowledged_or_gone(page, alert_id, timeout)
    except Exception:
        page.screenshot(path=str(SHOTS / "failure.png"), full_page=True)
        cards = page.locator("li.alert").evaluate_all(
            "cs => cs.map(c => [c.dataset.alert, c.dataset.status])"
        )
        print(f"cards at the failure: {cards}", file=sys.stderr)
        print(f"banner: {page.locator('#banner').text_content()!r}, updated: {page.locator('#updated').text_content()!r}", file=sys.stderr)
        lists = page.evaluate(
            """async () => { const t = sessionStorage.getItem("vitals.token"); const out = {};
               for (const s of ["escalated", "routed", "raised", "acknowledged"]) {
                 const r = await fetch("/alerts?status=" + s + "&limit=100", {headers: {authorization: "Bearer " + t}, cache: "no-store"});
                 out[s] = [r.status, (await r.text()).slice(0, 300)]; }
               return out; }"""
        )
        print(f"lists at the failure: {lists}", file=sys.stderr)
        own = page.evaluate(
            """async () => { const out = {};
               for (const s of ["escalated", "routed", "raised", "acknowledged"]) {
                 const p = "/alerts?status=" + s + "&limit=100";
                 const before = etags.get(p);
                 const a = await api(p);
                 out[s] = [before && before.etag, a.changed, (a.body.items || []).length]; }
               return out; }"""
        )
        print(f"the page's own api(): {own}", file=sys.stderr)
        raise


def _wait_acknowledged_or_gone(page, alert_id, timeout):
    page.wait_for_function(
        """id => { const c = document.querySelector(`li.alert[data-alert="${id}"]`);
                   return !c || c.dataset.status === "acknowledged"; }""",
        arg=alert_id,
        timeout=timeout,
    )


def shoot(page, name, route, ready):
    for label, size in (("desktop", DESKTOP), ("360", PHONE)):
        page.set_viewport_size(size)
        page.goto(URL + route)
        expect(page.locator(ready).first).to_be_visible(timeout=15000)
        page.wait_for_timeout(300)
        path = SHOTS / f"{name}-{label}.png"
        page.screenshot(path=str(path), full_page=True)
        if DOCS:
            shutil.copy(path, DOCS / path.name)


def main():
    SHOTS.mkdir(parents=True, exist_ok=True)
    if DOCS:
        DOCS.mkdir(parents=True, exist_ok=True)
    errors = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox"], headless=True
        )
        # The district supervisor watches the board on a desktop; the health worker has the
        # inbox open on a 360 px phone.
        supervisor = browser.new_context(viewport=DESKTOP)
        worker = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
        board = supervisor.new_page()
        inbox = worker.new_page()
        for page in (board, inbox):
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))

        sign_in(board, ARGS["supervisor"], "supervisor")
        board.goto(URL + "#/board")
        expect(board.locator("#alerts")).to_be_attached()
        sign_in(inbox, ARGS["worker"], "health-worker")
        inbox.goto(URL + "#/inbox/" + ARGS["worker"])
        expect(inbox.locator("#alerts")).to_be_attached()
        say("READY")

        line = sys.stdin.readline().strip()
        assert line == "POSTED", f"expected POSTED, got {line!r}"
        # The board updates by itself (polling with If-None-Match): no reload.
        on_board = board.locator(f'li.alert[data-patient="{ARGS["patient"]}"]').first
        expect(on_board).to_be_visible(timeout=45000)
        alert_id = on_board.get_attribute("data-alert")
        in_inbox = card(inbox, alert_id)
        expect(in_inbox).to_be_visible(timeout=30000)
        expect(in_inbox.locator("button.ack")).to_be_visible()
        in_inbox.locator("button.ack").click()
        # The worker's view changes once the API accepted it (acknowledged), then the alert
        # leaves the inbox or stays marked acknowledged; the supervisor's board follows by
        # itself.
        wait_acknowledged_or_gone(inbox, alert_id, 10000)
        say(f"ACKED {alert_id}")
        wait_acknowledged_or_gone(board, alert_id, 15000)
        expect(card(board, alert_id).locator("button.ack")).to_have_count(0)
        inbox.wait_for_timeout(3500)  # one more poll of the inbox
        wait_acknowledged_or_gone(inbox, alert_id, 10000)
        expect(card(inbox, alert_id).locator("button.ack")).to_have_count(0)

        views = {
            "board": ("#/board", "#alerts li"),
            "patient": ("#/patient/" + ARGS["patient"], "#patient svg.chart"),
            "village": ("#/village/" + ARGS["village"], "#village svg.chart"),
            "emergency": ("#/emergency/" + ARGS["emergency"], "#emergency ol.timeline li"),
        }
        for name in ARGS["views"]:
            shoot(board, name, *views[name])
        browser.close()
    assert not errors, f"errors in the page: {errors}"
    say("DONE")


if __name__ == "__main__":
    main()
