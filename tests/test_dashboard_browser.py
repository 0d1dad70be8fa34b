"""The dashboard of a real ``pixalert serve`` in a real browser.

``pixalert serve`` runs as a subprocess with real channels (the Slack and
webhook plugins' test servers on 127.0.0.1, and a webhook whose port refuses
connections, so its deliveries wait for a retry). Alerts go in through
``POST /webhook/alerts``. Debian's Chromium, headless, driven by Playwright,
loads each page; the tests check live updates without a reload, silences and
acknowledgement from the page, the bearer-token prompt, that user text stays
text, and that an open page does not hold up ``pixalert serve``'s shutdown.
Screenshots go to each test's ``tmp_path``.

They skip where no Chromium or no Playwright is installed, and fail instead
when ``PIXALERT_REQUIRE_SERVICES=1`` (as in CI, which installs Chromium).
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dashboard_stage import Stage, find_chromium, launch_browser, sample_data

pytestmark = [pytest.mark.slow]

#: A bound against a hang, never an assertion on speed (the page polls every second).
WAIT_MS = 20_000
XSS = "<img src=x onerror=alert(1)>"
# Resolves once the live region was fetched again and swapped in.
SWAPPED = """() => new Promise(resolve => {
  document.addEventListener("pixalert:updated", () => resolve(true), {once: true});
  document.getElementById("live").dataset.etag = "";
})"""


def _browser_or_skip() -> str:
    problem = None
    chromium = find_chromium()
    if chromium is None:
        problem = "no Chromium found: apt-get install -y chromium (or set PIXALERT_CHROMIUM to one)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the playwright package is not installed: pip install -r requirements-dev.txt"
    if problem is not None:
        if os.environ.get("PIXALERT_REQUIRE_SERVICES") == "1":
            pytest.fail(f"PIXALERT_REQUIRE_SERVICES=1 but {problem}")
        pytest.skip(problem)
    assert chromium is not None
    return chromium


@pytest.fixture(scope="module")
def chromium() -> str:
    return _browser_or_skip()


@pytest.fixture(scope="module")
def stage(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    """One ``pixalert serve`` (no token, on loopback) with a small history, for the module."""
    with Stage(tmp_path_factory.mktemp("serve")) as running:
        running.ids = sample_data(running)  # type: ignore[attr-defined]
        running.wait_settled()
        yield running


@pytest.fixture(scope="module")
def browser(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with launch_browser(chromium, tmp_path_factory.mktemp("profile")) as context:
        yield context


class Watched:
    """A page that records JavaScript errors and dialogs (an ``alert()`` is an XSS)."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on(
            "console",
            lambda msg: self.errors.append(msg.text) if msg.type == "error" else None,
        )

        def dialog(d: Any) -> None:
            self.dialogs.append(f"{d.type}: {d.message}")
            d.dismiss()

        page.on("dialog", dialog)

    def clean(self) -> None:
        assert self.errors == [], self.errors
        assert self.dialogs == [], self.dialogs


@pytest.fixture
def page(browser: Any) -> Iterator[Watched]:
    tab = browser.new_page()
    tab.set_default_timeout(WAIT_MS)
    watched = Watched(tab)
    yield watched
    tab.close()


def shoot(page: Watched, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    page.page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 1000
    return path


def test_each_page_shows_the_real_data(stage: Stage, page: Watched, tmp_path: Path) -> None:
    ids = stage.ids  # type: ignore[attr-defined]
    tab = page.page
    tab.goto(f"{stage.base_url}/")
    now = tab.locator("#live")
    # Alertmanager's two HighLatency alerts share a group; plain alerts group by source.
    group = tab.locator("section.group", has_text='alertname="HighLatency"')
    assert group.locator(".alert-row").count() == 2
    assert "p99 latency above 2 s on web-1" in group.inner_text()
    assert "TLS certificate expires in 5 days" in now.inner_text()
    # The resolved backup alert is not firing.
    assert tab.locator(".alert-row", has_text="Nightly backup finished late").count() == 0
    # pager refuses connections: its deliveries wait for their next attempt.
    tab.locator(".in-progress tr", has_text="pager").locator(".status-retrying").first.wait_for()
    shoot(page, tmp_path, "now")

    tab.goto(f"{stage.base_url}/alerts?search=backup")
    rows = tab.locator(".history-row")
    assert rows.count() == 2
    assert sorted(r.locator(".status").first.inner_text() for r in rows.all()) == [
        "firing",
        "resolved",
    ]
    shoot(page, tmp_path, "alerts")

    tab.goto(f"{stage.base_url}/alerts/{ids['cert']}")
    # Its first attempt on pager may still be under way: the page shows it once done.
    tab.locator("table.deliveries tr", has_text="pager").locator(".status-retrying").wait_for()
    deliveries = tab.locator("table.deliveries tbody tr")
    cells = [r.locator("td") for r in deliveries.all()]
    statuses = {c.nth(0).inner_text(): c.nth(1).inner_text() for c in cells}
    assert statuses == {"pager": "retrying", "slack": "sent", "webhook": "sent"}
    assert "next attempt on pager" in tab.locator("ol.timeline").inner_text()
    shoot(page, tmp_path, "alert")

    tab.goto(f"{stage.base_url}/channels")
    cards = tab.locator("section.card.channel")
    assert sorted(c.get_attribute("data-channel") for c in cards.all()) == [
        "pager",
        "slack",
        "webhook",
    ]
    assert tab.locator("section.card[data-channel=pager] .circuit").inner_text() in (
        "closed",
        "open",
        "half-open",
    )
    # The charts are drawn by the vendored uPlot, one per channel.
    tab.locator("#chart-list figure.chart canvas").first.wait_for()
    assert tab.locator("#chart-list figure.chart").count() == 3
    shoot(page, tmp_path, "channels")

    tab.goto(f"{stage.base_url}/heartbeats")
    assert "No heartbeats configured" in tab.locator("#live").inner_text()
    shoot(page, tmp_path, "heartbeats")

    tab.goto(f"{stage.base_url}/silences")
    assert tab.locator("#silence-form").count() == 1
    shoot(page, tmp_path, "silences")
    page.clean()


def test_a_new_alert_appears_without_a_reload(stage: Stage, page: Watched, tmp_path: Path) -> None:
    tab = page.page
    for path in ("/", "/alerts"):
        tab.goto(f"{stage.base_url}{path}")
        tab.evaluate("window.__sameDocument = true")
        title = f"Live probe {uuid.uuid4().hex[:8]}"
        stage.alert(title, "sent while the page was open", "high", source="probe")
        tab.locator(".alert-title", has_text=title).wait_for()
        assert tab.evaluate("window.__sameDocument") is True, "the page reloaded"
    shoot(page, tmp_path, "live")
    page.clean()


def test_silence_and_expire_from_the_page(stage: Stage, page: Watched, tmp_path: Path) -> None:
    tab = page.page
    tab.goto(f"{stage.base_url}/")
    # The Silence button of an alert opens the form with its key filled in.
    row = tab.locator(".alert-row", has_text="Processing queue backing up")
    key = row.get_attribute("data-key")
    row.locator("a", has_text="Silence").click()
    tab.wait_for_url("**/silences?key=*")
    assert tab.locator("#silence-form textarea").input_value().strip() == f"key={key}"
    tab.fill("#silence-form input[name=duration]", "2h")
    tab.fill("#silence-form input[name=comment]", "known <b>issue</b>")
    tab.click("#silence-form button[type=submit]")
    row = tab.locator("table.silences tr", has_text=f"key={key}")
    row.wait_for()
    assert "known <b>issue</b>" in row.inner_text()
    (silence,) = [
        s
        for s in httpx.get(f"{stage.base_url}/api/silences").json()["silences"]
        if s["matchers"] == {"key": key}
    ]
    assert silence["comment"] == "known <b>issue</b>"
    shoot(page, tmp_path, "silenced")
    row.locator("button", has_text="Expire").click()
    row.wait_for(state="detached")
    remaining = httpx.get(f"{stage.base_url}/api/silences").json()["silences"]
    assert all(s["id"] != silence["id"] for s in remaining)
    page.clean()


def test_ack_from_the_page(stage: Stage, page: Watched, tmp_path: Path) -> None:
    tab = page.page
    tab.goto(f"{stage.base_url}/")
    row = tab.locator(".alert-row", has_text="TLS certificate expires in 5 days")
    button = row.locator("button[data-action=ack]")
    if button.is_disabled():
        # This pixalert has no NotificationManager.ack: the button says why.
        assert "NotificationManager.ack" in (
            row.locator(".action-wrap:has(button[data-action=ack])").get_attribute("title") or ""
        )
        answer = httpx.post(f"{stage.base_url}/api/alerts/{stage.ids['cert']}/ack", json={})  # type: ignore[attr-defined]
        assert answer.status_code == 501
        shoot(page, tmp_path, "ack-unavailable")
        page.clean()
        return
    tab.evaluate("localStorage.setItem('pixalert-name', 'Ada <Ops>')")
    button.click()
    badge = row.locator(".badge-ack")
    badge.wait_for()
    assert "Acknowledged by Ada <Ops>" in badge.inner_text()
    shoot(page, tmp_path, "acked")
    page.clean()


def test_user_text_renders_as_text(stage: Stage, page: Watched, tmp_path: Path) -> None:
    alert_id = stage.alert(XSS, "<script>alert(2)</script>", "critical", source=XSS)
    tab = page.page
    for path in ("/", "/alerts", f"/alerts/{alert_id}", f"/silences?key={XSS}"):
        tab.goto(f"{stage.base_url}{path}")
        if path != f"/silences?key={XSS}":
            tab.locator(".alert-title", has_text=XSS).first.wait_for()
        else:
            assert XSS in tab.locator("#silence-form textarea").input_value()
        # Also after a live swap of the region (forced: the next poll asks without an ETag).
        tab.evaluate(SWAPPED)
        assert tab.locator("img").count() == 0
        assert tab.locator("main script").count() == 0
    shoot(page, tmp_path, "xss")
    page.clean()


def test_token_is_asked_once_and_kept_for_the_tab(
    chromium: str, browser: Any, tmp_path: Path
) -> None:
    token = "dashboard-token-" + uuid.uuid4().hex
    with Stage(tmp_path / "serve", token=token) as stage:
        stage.alert("Behind the token", "only with the token", "high", source="secret")
        tab = browser.new_page()
        tab.set_default_timeout(WAIT_MS)
        watched = Watched(tab)
        tab.goto(f"{stage.base_url}/")
        # Without the token the page shows no data, and asks for it.
        assert "Behind the token" not in tab.content()
        dialog = tab.locator("#token-dialog")
        dialog.wait_for()
        tab.fill("#token-dialog input[name=token]", "wrong")
        tab.click("#token-dialog button[value=save]")
        tab.locator("#token-error").wait_for()
        assert "invalid bearer token" in tab.locator("#token-error").inner_text()
        tab.fill("#token-dialog input[name=token]", token)
        tab.fill("#token-dialog input[name=name]", "Grace")
        tab.click("#token-dialog button[value=save]")
        tab.locator(".alert-title", has_text="Behind the token").wait_for()
        assert tab.evaluate("sessionStorage.getItem('pixalert-token')") == token
        # Another page of the same tab needs no prompt.
        tab.goto(f"{stage.base_url}/alerts")
        tab.locator(".alert-title", has_text="Behind the token").wait_for()
        assert not dialog.is_visible()
        # A silence from the page carries the token.
        tab.goto(f"{stage.base_url}/silences?source=secret")
        tab.click("#silence-form button[type=submit]")
        tab.locator("table.silences tr", has_text="source=secret").wait_for()
        shoot(watched, tmp_path, "token")
        watched.errors = [e for e in watched.errors if "401" not in e]
        watched.clean()
        tab.close()
        listed = httpx.get(f"{stage.base_url}/api/silences", headers=stage.headers()).json()
        assert [s["created_by"] for s in listed["silences"]] == ["Grace"]


def test_an_open_page_does_not_hold_up_shutdown(
    chromium: str, browser: Any, tmp_path: Path
) -> None:
    stage = Stage(tmp_path / "serve").start()
    try:
        stage.alert("Page left open", "", "low")
        tab = browser.new_page()
        tab.goto(f"{stage.base_url}/")
        tab.locator(".alert-title", has_text="Page left open").wait_for()
        assert stage.proc is not None
        code = stage.stop()  # SIGTERM, then waits (30 s bound against a hang)
        assert code == 0, "".join(stage.output[-30:])
        assert "pixalert: stopped" in "".join(stage.output)
        tab.close()
    finally:
        stage.stop()
