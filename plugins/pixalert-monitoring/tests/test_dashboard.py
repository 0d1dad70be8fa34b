"""The dashboard's pages and actions over real HTTP (a uvicorn on 127.0.0.1).

What a browser does with them is in the top-level tests/test_dashboard_browser.py;
these check the server side: the pages' data, escaping, ETags, who may look and
who may act (token, same origin, loopback, Host), the silence and lifecycle
endpoints, and that lifecycle data (acknowledgements, groups, heartbeats)
shows whenever a manager provides it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pixalert import Alert, Priority
from pixalert_monitoring import create_app
from pixalert_monitoring._views import firing_rows, lifecycle
from pixalert_monitoring.testing import running_receiver, running_server

TOKEN = "dashboard-test-token-0123456789"
XSS = "<img src=x onerror=alert(1)>"
LIVE = {"X-Pixalert-Live": "1"}


@pytest.fixture
async def open_receiver(manager: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A receiver without a token, and a client for it."""
    async with (
        running_receiver(manager) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=30) as client,
    ):
        yield client


@pytest.fixture
async def token_receiver(manager: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A receiver with a token, and a client for it (sending no token by itself)."""
    async with (
        running_receiver(manager, token=TOKEN) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=30) as client,
    ):
        yield client


async def test_every_page_renders_the_history(
    open_receiver: httpx.AsyncClient, manager: Any
) -> None:
    await manager.send_alert(
        "Disk full on db-1", "/ is 97% full", "high", metadata={"group_key": "g"}
    )
    (entry,) = await manager.history()
    for path in ("/", "/alerts", f"/alerts/{entry['id']}", "/channels", "/silences", "/heartbeats"):
        response = await open_receiver.get(path)
        assert response.status_code == 200, (path, response.text[:500])
        assert response.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in response.headers["content-security-policy"]
        if path in ("/", "/alerts", f"/alerts/{entry['id']}"):
            assert "Disk full on db-1" in response.text, path
    now = (await open_receiver.get("/")).text
    assert '<span class="group-name">g</span>' in now
    assert "recording" in (await open_receiver.get("/channels")).text
    assert "No heartbeats configured" in (await open_receiver.get("/heartbeats")).text


async def test_user_text_is_escaped(open_receiver: httpx.AsyncClient, manager: Any) -> None:
    await manager.send_alert(XSS, "<script>alert(2)</script>", "critical", metadata={XSS: XSS})
    (entry,) = await manager.history()
    await manager.silence({"key": entry["key"]}, duration=60, comment=XSS, created_by=XSS)
    for path in ("/", "/alerts", f"/alerts/{entry['id']}", "/silences"):
        body = (await open_receiver.get(path)).text
        assert "<img" not in body, path
        assert "<script>alert" not in body, path
        assert "&lt;img src=x onerror=alert(1)&gt;" in body, path
    # The silence form is filled from the query, escaped too.
    body = (await open_receiver.get("/silences", params={"key": XSS})).text
    assert "<img" not in body


async def test_live_region_answers_304_until_something_changes(
    open_receiver: httpx.AsyncClient, manager: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pixalert_monitoring import _dashboard

    monkeypatch.setattr(_dashboard, "CACHE_SECONDS", 0.0)
    first = await open_receiver.get("/", headers=LIVE)
    assert first.status_code == 200
    assert "<html" not in first.text  # only the region
    etag = first.headers["etag"]
    same = await open_receiver.get("/", headers={**LIVE, "If-None-Match": etag})
    assert same.status_code == 304
    await manager.send_alert("Something new", "", "high")
    changed = await open_receiver.get("/", headers={**LIVE, "If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    assert "Something new" in changed.text


async def test_bad_filters_say_what_was_expected(open_receiver: httpx.AsyncClient) -> None:
    for params, expected in (
        ({"hours": "-1"}, "hours: expected a number"),
        ({"priority": "urgent"}, "priority: expected one of critical, high, medium, low"),
        ({"status": "open"}, "status: expected one of firing, resolved"),
        ({"result": "lost"}, "result: expected one of sent"),
        ({"until": "yesterday"}, "until: expected a duration ago such as 90m"),
    ):
        response = await open_receiver.get("/alerts", params=params)
        assert response.status_code == 200
        assert expected in response.text, (params, response.text[-2000:])
    missing = await open_receiver.get("/alerts/no-such-alert")
    assert missing.status_code == 404
    assert "no alert" in missing.text
    assert (await open_receiver.get("/ui/series", params={"range": "1y"})).status_code == 400


async def test_filters_reach_the_history(open_receiver: httpx.AsyncClient, manager: Any) -> None:
    await manager.send_alert("Low one", "", "low", metadata={})
    await manager.send_alert("Critical one", "", "critical")
    body = (await open_receiver.get("/alerts", params={"priority": "critical"})).text
    assert "Critical one" in body and "Low one" not in body
    body = (await open_receiver.get("/alerts", params={"search": "low"})).text
    assert "Low one" in body and "Critical one" not in body
    low = (await manager.history(search="Low one"))[0]
    await manager.ack(low["id"], by="ada")
    body = (await open_receiver.get("/alerts", params={"status": "acknowledged"})).text
    assert "Low one" in body and "Critical one" not in body


async def test_with_a_token_the_data_needs_it(
    token_receiver: httpx.AsyncClient, manager: Any
) -> None:
    await manager.send_alert("Only with the token", "", "high")
    shell = await token_receiver.get("/")
    assert shell.status_code == 200
    assert "Only with the token" not in shell.text
    assert 'data-locked="1"' in shell.text
    assert (await token_receiver.get("/", headers=LIVE)).status_code == 401
    bad = await token_receiver.get("/", headers={**LIVE, "Authorization": "Bearer nope"})
    assert bad.status_code == 401
    good = await token_receiver.get("/", headers={**LIVE, "Authorization": f"Bearer {TOKEN}"})
    assert good.status_code == 200
    assert "Only with the token" in good.text
    assert (await token_receiver.get("/ui/series")).status_code == 401
    assert (await token_receiver.get("/api/silences")).status_code == 401
    refused = await token_receiver.post("/api/silences", json={"matchers": {"key": "k"}})
    assert refused.status_code == 401
    added = await token_receiver.post(
        "/api/silences",
        json={"matchers": {"key": "k"}, "duration": "10m"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert added.status_code == 201


async def test_actions_refuse_cross_site_requests(open_receiver: httpx.AsyncClient) -> None:
    body = {"matchers": {"key": "k"}, "duration": "1h"}
    host = open_receiver.base_url.netloc.decode()
    for headers, error in (
        ({"Origin": "http://evil.example"}, "cross-origin request refused"),
        ({"Origin": "null"}, "cross-origin request refused"),
        ({"Sec-Fetch-Site": "cross-site"}, "cross-site request refused"),
        ({"Sec-Fetch-Site": "same-site"}, "cross-site request refused"),
    ):
        response = await open_receiver.post("/api/silences", json=body, headers=headers)
        assert response.status_code == 403, headers
        assert response.json()["error"] == error
    # A form post (not JSON) is refused too: a page elsewhere could send one.
    form = await open_receiver.post("/api/silences", data={"matchers": "key=k"})
    assert form.status_code == 415
    # The same origin is fine.
    same = await open_receiver.post(
        "/api/silences",
        json=body,
        headers={"Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin"},
    )
    assert same.status_code == 201


async def test_without_a_token_a_rebound_host_is_refused(open_receiver: httpx.AsyncClient) -> None:
    # A page on evil.example whose name now resolves to 127.0.0.1 sends its own Host.
    for path in ("/", "/alerts"):
        response = await open_receiver.get(path, headers={"Host": "evil.example"})
        assert response.status_code == 403
        assert response.json()["error"] == "unexpected Host"
    response = await open_receiver.post(
        "/api/silences", json={"matchers": {"key": "k"}}, headers={"Host": "evil.example"}
    )
    assert response.status_code == 403
    assert (await open_receiver.get("/", headers={"Host": "localhost"})).status_code == 200


async def test_without_a_token_only_this_machine_may_act(manager: Any) -> None:
    # ``serve --allow-unauthenticated`` on a public address: others may look, not act.
    app = create_app(manager)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    async with running_server(app):  # noqa: SIM117  (runs the app's startup: the manager starts)
        async with httpx.AsyncClient(transport=transport, base_url="http://192.0.2.1") as client:
            assert (await client.get("/")).status_code == 200
            response = await client.post("/api/silences", json={"matchers": {"key": "k"}})
            assert response.status_code == 403
            assert response.json()["error"] == "actions need a bearer token"


async def test_silences_api(open_receiver: httpx.AsyncClient, manager: Any) -> None:
    added = await open_receiver.post(
        "/api/silences",
        json={
            "matchers": {"source": "db-*"},
            "duration": "2h",
            "comment": "upgrade",
            "created_by": "ada",
        },
    )
    assert added.status_code == 201
    silence = added.json()
    assert silence["matchers"] == {"source": "db-*"}
    assert silence["created_by"] == "ada"
    assert [s.id for s in await manager.silences()] == [silence["id"]]
    assert "upgrade" in (await open_receiver.get("/silences")).text
    for body, error in (
        ({"matchers": {}}, "invalid matchers"),
        ({"matchers": {"key": 1}}, "invalid matchers"),
        ({"matchers": {"key": "k"}, "duration": "forever"}, "invalid duration"),
        ({"matchers": {"key": "k"}, "duration": 0}, "invalid duration"),
        ({"matchers": {"colour": "red"}}, "invalid silence"),
        ({"matchers": {"key": "k"}, "comment": 5}, "invalid comment"),
    ):
        response = await open_receiver.post("/api/silences", json=body)
        assert response.status_code == 422, body
        assert response.json()["error"] == error, response.json()
    assert (
        await open_receiver.post(
            "/api/silences", content=b"[1]", headers={"Content-Type": "application/json"}
        )
    ).status_code == 422
    assert (
        await open_receiver.post(
            "/api/silences", content=b"{", headers={"Content-Type": "application/json"}
        )
    ).status_code == 400
    gone = await open_receiver.delete(f"/api/silences/{silence['id']}")
    assert gone.status_code == 200
    assert await manager.silences() == []
    assert (await open_receiver.delete(f"/api/silences/{silence['id']}")).status_code == 404


async def test_ack_without_lifecycle_support_is_501(
    open_receiver: httpx.AsyncClient, manager: Any
) -> None:
    if callable(getattr(manager, "ack", None)):
        pytest.skip("this pixalert's manager has ack(): the lifecycle tests cover it")
    await manager.send_alert("Needs an ack", "", "high")
    (entry,) = await manager.history()
    response = await open_receiver.post(f"/api/alerts/{entry['id']}/ack", json={"by": "ada"})
    assert response.status_code == 501
    page = (await open_receiver.get("/")).text
    assert 'data-action="ack"' in page
    assert "disabled" in page.split('data-action="ack"', 1)[1].split(">", 1)[0]


class WithHeartbeats:
    """A real manager, with heartbeats() answering what the heartbeats page must show
    (a late check, and one named like an XSS probe)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def heartbeats(self) -> list[dict[str, Any]]:
        return [
            {
                "name": "nightly-backup",
                "state": "late",
                "last_ping": 1_700_000_000.0,
                "next_deadline": "2030-01-01T03:00:00+00:00",
                "period": "1d",
                "grace": "1h",
            },
            {"name": XSS, "state": "up", "last_ping": None},
        ]


async def test_ack_and_resolve_from_the_page(manager: Any) -> None:
    await manager.send_alert("Page someone", "", "critical")
    (entry,) = await manager.history()
    async with running_receiver(manager) as base_url:  # noqa: SIM117
        async with httpx.AsyncClient(base_url=base_url) as client:
            page = (await client.get("/")).text
            assert "disabled" not in page.split('data-action="ack"', 1)[1].split(">", 1)[0]
            acked = await client.post(
                f"/api/alerts/{entry['id']}/ack", json={"by": "Ada <Ops>", "note": "on it"}
            )
            assert acked.status_code == 200, acked.text
            (event,) = (await manager.get_alert(entry["id"]))["events"]
            assert (event["kind"], event["by"], event["note"]) == (
                "acknowledged",
                "Ada <Ops>",
                "on it",
            )
            page = (await client.get("/")).text
            assert "Acknowledged by Ada &lt;Ops&gt;" in page
            assert 'data-action="ack"' not in page  # acknowledged: no second ack button
            unknown = await client.post("/api/alerts/nope/ack", json={})
            assert unknown.status_code == 404
            resolved = await client.post(f"/api/alerts/{entry['id']}/resolve", json={"by": "ada"})
            assert resolved.status_code == 200, resolved.text
            assert "Nothing is firing" in (await client.get("/")).text
            detail = (await client.get(f"/alerts/{entry['id']}")).text
            assert "Resolved by ada" in detail


async def test_the_heartbeats_page_shows_each_check_escaped(manager: Any) -> None:
    async with running_receiver(WithHeartbeats(manager)) as base_url:  # noqa: SIM117
        async with httpx.AsyncClient(base_url=base_url) as client:
            beats = (await client.get("/heartbeats")).text
    assert "nightly-backup" in beats and "late" in beats
    assert "&lt;img" in beats and "<img" not in beats


def _entry(key: str, status: str, at: str, **extra: Any) -> dict[str, Any]:
    alert = Alert(title=f"alert {key}", message="", priority=Priority.HIGH, key=key, status=status)
    data = alert.to_dict()
    data.update({"created_at": at, "state": "done", "results": {}, "events": [], **extra})
    return data


def test_firing_rows_follow_each_keys_newest_record() -> None:
    entries = [  # newest first
        _entry("a", "firing", "2030-01-01T00:05:00+00:00"),
        _entry("b", "resolved", "2030-01-01T00:04:00+00:00"),
        _entry(
            "a",
            "firing",
            "2030-01-01T00:03:00+00:00",
            events=[{"kind": "acknowledged", "at": "2030-01-01T00:03:30+00:00", "by": "ada"}],
        ),
        _entry("b", "firing", "2030-01-01T00:02:00+00:00"),
        _entry("a", "resolved", "2030-01-01T00:01:00+00:00"),
        _entry("a", "firing", "2030-01-01T00:00:00+00:00"),
        _entry(
            "c",
            "firing",
            "2030-01-01T00:00:00+00:00",
            results={"slack": {"channel": "slack", "status": "held", "group": "night"}},
        ),
    ]
    rows = {row["key"]: row for row in firing_rows(entries)}
    assert set(rows) == {"a", "c"}
    assert rows["a"]["count"] == 2  # since its last resolve
    assert rows["a"]["first_at"] == "2030-01-01T00:03:00+00:00"
    assert rows["a"]["acknowledged"]["by"] == "ada"
    assert rows["c"]["group"] == "night"
    assert rows["c"]["deliveries"][0]["status"] == "held"


def test_lifecycle_reads_the_events() -> None:
    entry = _entry(
        "k",
        "firing",
        "2030-01-01T00:00:00+00:00",
        events=[
            {"kind": "escalated", "at": "2030-01-01T00:05:00+00:00", "note": "step 2"},
            {"kind": "acknowledged", "at": "2030-01-01T00:06:00+00:00", "by": "ada"},
            {"kind": "unacknowledged", "at": "2030-01-01T00:07:00+00:00", "by": "ada"},
        ],
    )
    state = lifecycle(entry)
    assert state["acknowledged"] is None
    assert [e["note"] for e in state["escalations"]] == ["step 2"]
    entry["metadata"] = {"group_key": "am-group"}
    assert lifecycle(entry)["group"] == "am-group"


async def test_every_action_endpoint_under_api_is_guarded(
    manager: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An endpoint another module adds to the receiver (as acknowledgement does) is
    # guarded too: the check runs for every POST/PUT/PATCH/DELETE under /api/.
    from pixalert_monitoring import _receiver
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def poke(request: Any) -> JSONResponse:
        return JSONResponse({"poked": True})

    routes = [*_receiver.ROUTES, Route("/api/poke", poke, methods=["POST"])]
    monkeypatch.setattr(_receiver, "ROUTES", routes)
    async with (
        running_receiver(manager) as base_url,
        httpx.AsyncClient(base_url=base_url) as client,
    ):
        refused = await client.post("/api/poke", headers={"Origin": "http://evil.example"})
        assert refused.status_code == 403
        assert refused.json()["error"] == "cross-origin request refused"
        assert (await client.post("/api/poke")).json() == {"poked": True}
        # Machine-to-machine endpoints outside /api/ are not browser actions.
        webhook = await client.post(
            "/webhook/alerts",
            json={"title": "from a script"},
            headers={"Origin": "http://elsewhere.example"},
        )
        assert webhook.status_code == 200


class BrokenStoreManager(WithHeartbeats):
    """A manager whose history store is down."""

    async def history(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        raise ConnectionError("history store at db.internal:5432 refused the connection")


async def test_a_store_outage_is_a_503_page_not_a_crash(manager: Any) -> None:
    async with (
        running_receiver(BrokenStoreManager(manager)) as base_url,
        httpx.AsyncClient(base_url=base_url) as client,
    ):
        page = await client.get("/")
        assert page.status_code == 503
        assert page.headers["content-type"].startswith("text/html")
        assert "Could not read the data of this page" in page.text
        assert "refused the connection" in page.text
        live = await client.get("/", headers=LIVE)
        assert live.status_code == 503
        assert live.json()["error"] == "could not read the data of the page"
