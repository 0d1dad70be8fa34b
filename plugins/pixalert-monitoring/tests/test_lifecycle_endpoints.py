"""The receiver's lifecycle endpoints over real HTTP: ack and resolve, heartbeats,
escalations, email links and a channel's signed actions; bad input of every kind
gets its 4xx and changes nothing."""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from pixalert.channels import Interaction, InteractionRejected
from pixalert.testing import FakeClock, RecordingChannel, make_manager

TOKEN = "lifecycle-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LINK_SECRET = "link-secret-for-tests-0123"
CHAT_SECRET = b"chat-signing-secret"
CONFIG = {
    "routing": {p: ["*"] for p in ("low", "medium", "high", "critical")},
    "actions": {"public_url": "https://alerts.example.com", "secret": LINK_SECRET},
    "heartbeats": {"backup": {"period": "1h", "grace": "5m"}},
}


class Chat(RecordingChannel):
    """A channel whose service signs its button clicks (as Slack does, simplified)."""

    async def interaction(self, headers: Any, body: bytes) -> Interaction | None:
        given = headers.get("x-chat-signature", "")
        expected = hmac.new(CHAT_SECRET, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise InteractionRejected(401, "the request's signature does not match")
        action, _, alert_id = body.decode().partition(":")
        return Interaction(action, alert_id, by="carol")  # type: ignore[arg-type]


def signed(body: bytes) -> dict[str, str]:
    return {"X-Chat-Signature": hmac.new(CHAT_SECRET, body, hashlib.sha256).hexdigest()}


@pytest.fixture
async def setup(receiver_factory: Any, clock: FakeClock) -> Any:
    chat = Chat("chat")
    manager = make_manager([chat], clock=clock, config=CONFIG)
    async with receiver_factory(manager=manager, token=TOKEN) as receiver:
        await manager.send_alert("DB down", "primary unreachable", "critical", key="db")
        receiver.chat = chat
        receiver.manager = manager
        receiver.alert_id = chat.sent[0].id
        yield receiver
    await manager.aclose()


async def test_ack_and_resolve_over_http(setup: Any) -> None:
    r, client = setup, setup.client
    url = f"{r.base_url}/api/alerts/{r.alert_id}"
    response = await client.post(f"{url}/ack", json={"by": "alice", "note": "on it"}, headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["changed"], body["state"], body["by"], body["via"]) == (
        True,
        "acknowledged",
        "alice",
        "api",
    )
    again = await client.post(f"{url}/ack", headers=AUTH)
    assert again.status_code == 200
    assert (
        again.json()["changed"] is False
        and "already acknowledged by alice" in again.json()["detail"]
    )
    resolved = await client.post(f"{url}/resolve", json={"by": "bob"}, headers=AUTH)
    assert resolved.status_code == 200 and resolved.json()["changed"] is True
    assert resolved.json()["results"]["chat"]["status"] == "sent"
    assert [a.status for a in r.chat.sent] == ["firing", "resolved"]
    events = (await r.manager.get_alert(r.alert_id))["events"]
    assert [(e["kind"], e["by"], e["via"]) for e in events] == [
        ("acknowledged", "alice", "api"),
        ("resolved", "bob", "api"),
    ]
    twice = await client.post(f"{url}/resolve", headers=AUTH)
    assert twice.json()["changed"] is False


@pytest.mark.parametrize(
    ("path", "kwargs", "status", "error"),
    [
        ("/api/alerts/{id}/ack", {}, 401, "missing bearer token"),
        ("/api/alerts/{id}/ack", {"headers": {"Authorization": "Bearer wrong"}}, 401, "invalid"),
        ("/api/alerts/ffff/ack", {"headers": AUTH}, 404, "unknown alert"),
        ("/api/alerts/ffff/resolve", {"headers": AUTH}, 404, "unknown alert"),
        ("/api/alerts/{id}/ack", {"headers": AUTH, "content": b"{"}, 415, "unsupported"),
        (
            "/api/alerts/{id}/ack",
            {"headers": {**AUTH, "Content-Type": "application/json"}, "content": b"{"},
            400,
            "malformed JSON",
        ),
        ("/api/alerts/{id}/ack", {"headers": AUTH, "json": [1]}, 422, "invalid body"),
        ("/api/alerts/{id}/ack", {"headers": AUTH, "json": {"by": 3}}, 422, "invalid body"),
        ("/api/alerts/{id}/ack", {"headers": AUTH, "json": {"who": "x"}}, 422, "invalid body"),
        ("/api/alerts/{id}/ack", {"headers": AUTH, "json": {"by": "x" * 201}}, 422, "invalid"),
        (
            "/api/alerts/{id}/ack",
            {"headers": AUTH, "json": {"note": "x" * 20000}},
            413,
            "too large",
        ),
        ("/heartbeat/backup", {}, 401, "missing bearer token"),
        ("/heartbeat/nightly", {"headers": AUTH}, 404, "unknown heartbeat"),
        ("/heartbeat/backup/fail", {"headers": AUTH, "content": b"\xff\xfe"}, 400, "UTF-8"),
        ("/heartbeat/backup/fail", {"headers": AUTH, "content": b"x" * 20000}, 413, "too large"),
        ("/heartbeat/bad name!", {"headers": AUTH}, 404, "unknown heartbeat"),
        ("/heartbeat/backup/stop", {"headers": AUTH}, 404, "Not Found"),
        ("/chat/actions", {"content": b"ack:{id}"}, 401, "request refused"),
        (
            "/chat/actions",
            {"content": b"ack:{id}", "headers": {"X-Chat-Signature": "00"}},
            401,
            "request refused",
        ),
        ("/nope/actions", {"content": b"x"}, 404, "not found"),
    ],
)
async def test_bad_requests_get_their_4xx_and_change_nothing(
    setup: Any, path: str, kwargs: dict[str, Any], status: int, error: str
) -> None:
    if isinstance(kwargs.get("content"), bytes):
        kwargs = {**kwargs, "content": kwargs["content"].replace(b"{id}", setup.alert_id.encode())}
    response = await setup.client.post(setup.base_url + path.format(id=setup.alert_id), **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert error.lower() in response.text.lower()
    await setup.manager.drain()
    assert (await setup.manager.get_alert(setup.alert_id))["events"] == []
    assert len(setup.chat.sent) == 1
    assert (await setup.manager.heartbeats())[0]["state"] == "new"


async def test_get_on_post_endpoints_is_405(setup: Any) -> None:
    for path in ("/api/alerts/x/ack", "/heartbeat/backup", "/chat/actions"):
        response = await setup.client.get(setup.base_url + path, headers=AUTH)
        assert response.status_code == 405


async def test_a_signed_channel_action_acks_in_the_background(setup: Any) -> None:
    body = f"ack:{setup.alert_id}".encode()
    response = await setup.client.post(
        f"{setup.base_url}/chat/actions", content=body, headers=signed(body)
    )
    assert response.status_code == 200 and response.content == b""
    await setup.manager.drain()
    events = (await setup.manager.get_alert(setup.alert_id))["events"]
    assert [(e["kind"], e["by"], e["via"]) for e in events] == [("acknowledged", "carol", "chat")]
    # A retried delivery of the same click (Slack retries) is harmless.
    again = await setup.client.post(
        f"{setup.base_url}/chat/actions", content=body, headers=signed(body)
    )
    assert again.status_code == 200
    await setup.manager.drain()
    assert len((await setup.manager.get_alert(setup.alert_id))["events"]) == 1


async def test_heartbeat_pings_over_http(setup: Any, clock: FakeClock) -> None:
    base, client = setup.base_url, setup.client
    started = await client.post(f"{base}/heartbeat/backup/start", headers=AUTH)
    assert started.status_code == 200 and started.json()["running"] is True
    clock.advance(42)
    done = await client.post(f"{base}/heartbeat/backup", headers=AUTH)
    assert done.json()["last_duration"] == pytest.approx(42) and done.json()["state"] == "up"
    failed = await client.post(
        f"{base}/heartbeat/backup/fail", content=b"tar: disk full", headers=AUTH
    )
    assert failed.json()["alert"] == "raised"
    assert setup.chat.sent[-1].key == "heartbeat:backup"
    assert "tar: disk full" in setup.chat.sent[-1].message
    listing = await client.get(f"{base}/api/heartbeats", headers=AUTH)
    assert listing.json()["heartbeats"][0]["state"] == "failed"
    assert (await client.get(f"{base}/api/heartbeats")).status_code == 401
    escalations = await client.get(f"{base}/api/escalations?all=1", headers=AUTH)
    assert escalations.status_code == 200 and escalations.json() == {"escalations": []}


# ---------------------------------------------------------------------------
# Email links
# ---------------------------------------------------------------------------


def link(setup: Any, action: str = "ack") -> str:
    made = setup.manager.action_links.links(setup.chat.sent[0])
    url = made.ack if action == "ack" else made.resolve
    split = urlsplit(url)
    return f"{setup.base_url}{split.path}?{split.query}"


async def test_an_email_link_asks_first_then_acts_and_twice_is_harmless(setup: Any) -> None:
    url = link(setup)
    page = await setup.client.get(url)  # what a mail scanner's prefetch does
    assert page.status_code == 200 and "Acknowledge this alert?" in page.text
    assert "DB down" in page.text and 'method="post"' in page.text
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert (await setup.manager.get_alert(setup.alert_id))["events"] == []
    assert re.search(r"<form method=\"post\">", page.text)  # posts back to the link itself
    done = await setup.client.post(url, data={"by": "dana"})
    assert done.status_code == 200 and "Alert acknowledged" in done.text
    opened = await setup.client.get(url)  # opened again: says so, asks nothing
    assert "Already acknowledged by dana via email" in opened.text and "<form" not in opened.text
    again = await setup.client.post(url, data={"by": "erin"})
    assert again.status_code == 200 and "Already acknowledged" in again.text
    assert "dana" in again.text
    events = (await setup.manager.get_alert(setup.alert_id))["events"]
    assert [(e["kind"], e["by"], e["via"]) for e in events] == [("acknowledged", "dana", "email")]
    resolved = await setup.client.post(link(setup, "resolve"))
    assert "Alert resolved" in resolved.text and setup.chat.sent[-1].status == "resolved"


@pytest.mark.parametrize(
    ("change", "status", "says"),
    [
        ("sig", 403, "This link is not valid"),
        ("expires", 403, "This link is not valid"),
        ("id", 403, "This link is not valid"),
        ("action", 403, "This link is not valid"),
        ("no-sig", 403, "This link is not valid"),
        ("bad-action", 404, "Link not found"),
    ],
)
async def test_an_altered_link_gets_a_clear_page_and_changes_nothing(
    setup: Any, change: str, status: int, says: str
) -> None:
    url = link(setup)
    if change == "sig":
        url = url[:-2] + ("AA" if not url.endswith("AA") else "BB")
    elif change == "expires":
        url = re.sub(r"expires=(\d+)", lambda m: f"expires={int(m.group(1)) + 999}", url)
    elif change == "id":
        url = url.replace(
            setup.alert_id, setup.alert_id[:-1] + ("0" if setup.alert_id[-1] != "0" else "1")
        )
    elif change == "action":
        url = url.replace("/links/ack/", "/links/resolve/")
    elif change == "no-sig":
        url = url.split("&sig=")[0]
    else:
        url = url.replace("/links/ack/", "/links/delete/")
    for method in ("GET", "POST"):
        response = await setup.client.request(method, url)
        assert response.status_code == status and says in response.text
        assert response.headers["content-type"].startswith("text/html")
    assert (await setup.manager.get_alert(setup.alert_id))["events"] == []
    assert len(setup.chat.sent) == 1


async def test_an_expired_link_gets_a_clear_page(setup: Any, clock: FakeClock) -> None:
    url = link(setup)
    clock.advance(86401)
    for method in ("GET", "POST"):
        response = await setup.client.request(method, url)
        assert response.status_code == 410 and "This link has expired" in response.text
    assert (await setup.manager.get_alert(setup.alert_id))["events"] == []


async def test_a_link_post_takes_only_the_form(setup: Any) -> None:
    response = await setup.client.post(link(setup), json={"by": "x"})
    assert response.status_code == 415
    response = await setup.client.post(
        link(setup),
        content=b"by=%ff",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400
    assert (await setup.manager.get_alert(setup.alert_id))["events"] == []


async def test_without_link_secret_links_are_not_found(
    receiver_factory: Any, clock: FakeClock
) -> None:
    manager = make_manager([RecordingChannel("chat")], clock=clock)
    async with receiver_factory(manager=manager) as r:
        response = await r.client.get(f"{r.base_url}/links/ack/abc?expires=1&sig=x")
        assert response.status_code == 404 and "does not take links" in response.text
    await manager.aclose()


async def test_the_token_and_secrets_never_show(setup: Any) -> None:
    texts = []
    for path in ("/api/alerts/ffff/ack", "/chat/actions"):
        texts.append((await setup.client.post(setup.base_url + path, headers=AUTH)).text)
    texts.append((await setup.client.get(link(setup))).text)
    for text in texts:
        assert TOKEN not in text and LINK_SECRET not in text


def watchdog_body(am: Any, status: str = "firing") -> dict[str, Any]:
    body = am.json("firing_single")
    alert = body["alerts"][0]
    alert["labels"] = {"alertname": "Watchdog", "severity": "none", "prometheus": "main"}
    alert["annotations"] = {"summary": "An alert that should always be firing"}
    alert["fingerprint"] = "e0c9b5cfb1a7a5d3"
    alert["status"] = status
    body["status"] = status
    body["commonLabels"] = dict(alert["labels"])
    body["groupLabels"] = {"alertname": "Watchdog"}
    body["groupKey"] = '{}:{alertname="Watchdog"}'
    return body


async def test_alertmanagers_watchdog_is_a_heartbeat_ping(
    receiver_factory: Any, clock: FakeClock, am: Any
) -> None:
    chat = RecordingChannel("chat")
    config = {
        **CONFIG,
        "heartbeats": {"prometheus": {"period": "10m", "match": {"alertname": "Watchdog"}}},
    }
    manager = make_manager([chat], clock=clock, config=config)
    async with receiver_factory(manager=manager, token=TOKEN) as r:
        response = await r.client.post(r.url, json=watchdog_body(am), headers=AUTH)
        assert response.status_code == 200 and response.json()["accepted"] == 1
        await manager.drain()
        assert chat.sent == []  # a ping, not a notification
        (state,) = await manager.heartbeats()
        assert state["pings"] == 1 and state["state"] == "up"
        (stored,) = await manager.history()
        assert stored["results"]["chat"]["error"] == "heartbeat ping for prometheus"
        # Prometheus stops: no Watchdog for longer than the period and its grace.
        clock.advance(16 * 60)
        await manager.resume_pending()
        assert [a.key for a in chat.sent] == ["heartbeat:prometheus"]
        # It is back: the next Watchdog (after the receiver's dedup window) resolves it.
        response = await r.client.post(r.url, json=watchdog_body(am), headers=AUTH)
        assert response.json()["accepted"] == 1
        await manager.drain()
        assert [(a.key, a.status) for a in chat.sent][-1] == ("heartbeat:prometheus", "resolved")
    await manager.aclose()
