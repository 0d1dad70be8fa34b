"""The HTTP receiver on a real uvicorn on 127.0.0.1: every capture byte for byte, bad
input of every kind with its status and message, tokens, metrics, health, overload."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pixalert import Alert
from pixalert.testing import FakeClock, RecordingChannel, make_manager

ROUTE_ALL = {"routing": {p: ["*"] for p in ("low", "medium", "high", "critical")}}
TOKEN = "s3cret-token-for-tests"


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The JSON error body (and check it is one)."""
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body.get("error"), str)
    return body  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------
# Alertmanager's bodies, as sent
# ---------------------------------------------------------------------------


async def test_every_fixture_over_http(
    fixture_name: str, am: Any, receiver: Any, manager: Any, recorder: RecordingChannel
) -> None:
    body = am.json(fixture_name)
    response = await receiver.post_raw(am.raw(fixture_name))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["status"] == "accepted"
    assert answer["format"] == "alertmanager"
    assert answer["accepted"] == len(body["alerts"])
    await manager.drain()
    assert [(a.metadata["fingerprint"], a.status) for a in recorder.sent] == [
        (a["fingerprint"], a["status"]) for a in body["alerts"]
    ]
    # Redelivered (Alertmanager retry or the other HA peer): 200 again, nothing sent.
    again = await receiver.post_raw(am.raw(fixture_name))
    assert again.status_code == 200
    assert again.json()["duplicates"] == len(body["alerts"])
    await manager.drain()
    assert len(recorder.sent) == len(body["alerts"])


async def test_repeat_interval_resend_is_taken_over_http(
    am: Any, receiver: Any, manager: Any, recorder: RecordingChannel, clock: FakeClock
) -> None:
    assert (await receiver.post_raw(am.raw("critical_route"))).json()["accepted"] == 1
    clock.advance(15)  # the second HA peer's copy, peer_timeout later
    assert (await receiver.post_raw(am.raw("critical_route"))).json()["duplicates"] == 1
    clock.advance(4 * 3600)  # Alertmanager's default repeat_interval
    repeat = await receiver.post_raw(am.raw("repeat_notification"))
    assert (repeat.json()["accepted"], repeat.json()["duplicates"]) == (1, 0)
    await manager.drain()
    assert [a.metadata["fingerprint"] for a in recorder.sent] == ["f6c6cd297bb7c8e6"] * 2


async def test_group_lifecycle_over_http(
    am: Any, receiver: Any, manager: Any, recorder: RecordingChannel
) -> None:
    for name in (
        "firing_group",
        "firing_group_updated",
        "partially_resolved",
        "resolved",
        "firing_group",
    ):
        assert (await receiver.post_raw(am.raw(name))).status_code == 200
    await manager.drain()
    assert sorted((a.metadata["fingerprint"], a.status) for a in recorder.sent) == sorted(
        [
            (fp, status)
            for fp in ("58eb42a7154e9687", "e3d826d0c1ca4fe4", "1387954175b8b219")
            for status in ("firing", "resolved")
        ]
    )


async def test_ha_pair_same_body_to_both_peers_sends_once(
    am: Any, receiver_factory: Any, clock: FakeClock
) -> None:
    from pixalert._memory import MemoryStateBackend

    shared = MemoryStateBackend(clock)
    sinks = [RecordingChannel("recording"), RecordingChannel("recording")]
    managers = [make_manager([s], clock=clock, config=ROUTE_ALL, state=shared) for s in sinks]
    try:
        async with (
            receiver_factory(manager=managers[0]) as a,
            receiver_factory(manager=managers[1]) as b,
        ):
            raw = am.raw("firing_group_updated")
            answers = await asyncio.gather(a.post_raw(raw), b.post_raw(raw), a.post_raw(raw))
            assert [r.status_code for r in answers] == [200, 200, 200]
            assert sum(r.json()["accepted"] for r in answers) == 3
        assert sum(len(s.sent) for s in sinks) == 3
    finally:
        for m in managers:
            await m.aclose()


class BlockingChannel(RecordingChannel):
    """Holds every send until :attr:`release` is set."""

    def __init__(self) -> None:
        super().__init__("recording")
        self.release = asyncio.Event()
        self.started = asyncio.Event()

    async def send(self, alert: Alert, *, previous: Any = None) -> Any:
        self.started.set()
        await self.release.wait()
        return await super().send(alert, previous=previous)


async def test_answers_200_once_stored_before_delivery(
    am: Any, receiver_factory: Any, clock: FakeClock
) -> None:
    channel = BlockingChannel()
    manager = make_manager([channel], clock=clock, config=ROUTE_ALL)
    try:
        async with receiver_factory(manager=manager) as r:
            response = await r.post_raw(am.raw("firing_single"))
            assert response.status_code == 200
            await channel.started.wait()
            stored = await manager.history(24)
            assert [h["state"] for h in stored] == ["pending"]
            assert channel.sent == []
            channel.release.set()
            await manager.drain()
            assert [h["state"] for h in await manager.history(24)] == ["done"]
            assert len(channel.sent) == 1
    finally:
        channel.release.set()
        await manager.aclose()


async def test_grafana_and_plain_bodies(
    receiver: Any, manager: Any, recorder: RecordingChannel
) -> None:
    grafana = {
        "receiver": "w",
        "status": "firing",
        "orgId": 1,
        "version": "1",
        "groupKey": "{}:{}",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "Mem", "severity": "warning"},
                "annotations": {"summary": "Memory high"},
                "startsAt": "2021-10-12T09:51:03.157076+02:00",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": "c6eadffa33fcdf37",
            }
        ],
    }
    assert (await receiver.post_json(grafana)).json()["format"] == "grafana"
    assert (await receiver.post_json({"title": "Disk full", "priority": "high"})).json()[
        "format"
    ] == "plain"
    assert (await receiver.post_json([{"title": "a"}, {"title": "b"}])).json()["accepted"] == 2
    await manager.drain()
    assert [a.title for a in recorder.sent] == ["Memory high", "Disk full", "a", "b"]


# ---------------------------------------------------------------------------
# Bad input: the status and the message
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "status", "error", "detail"),
    [
        (b"", 400, "empty body", "expected a JSON alert body"),
        (b"   \n", 400, "empty body", None),
        (b'{"title": "x"', 400, "malformed JSON", "Expecting"),
        (b"{'title': 'x'}", 400, "malformed JSON", "property name enclosed in double quotes"),
        (b'{"title": "caf\xe9"}', 400, "body is not valid UTF-8", "offset"),
        (b'"hello"', 422, "unrecognised or invalid alert body", "expected a JSON object or array"),
        (
            b'{"foo": 1}',
            422,
            "unrecognised or invalid alert body",
            "expected an Alertmanager webhook",
        ),
        (
            b'{"alerts": [], "version": "3"}',
            422,
            "unrecognised or invalid alert body",
            "unsupported webhook version '3'",
        ),
        (
            b'{"title": "x", "priority": "urgent"}',
            422,
            "unrecognised or invalid alert body",
            "unknown priority 'urgent'",
        ),
    ],
)
async def test_bad_bodies(
    receiver: Any,
    recorder: RecordingChannel,
    manager: Any,
    raw: bytes,
    status: int,
    error: str,
    detail: str | None,
) -> None:
    response = await receiver.post_raw(raw)
    assert response.status_code == status
    body = error_of(response)
    assert body["error"] == error
    if detail is not None:
        assert detail in json.dumps(body["detail"])
    await manager.drain()
    assert recorder.sent == []


@pytest.mark.parametrize(
    ("raw", "problems"),
    [
        (b'{"title": NaN}', ["title: expected a finite number, got NaN"]),
        (
            b'{"title": "x", "metadata": {"load": 1e999}}',
            ["metadata.load: expected a finite number, got 1e999"],
        ),
        (
            b'{"title": "x", "metadata": {"a": [1.5, -Infinity, {"b": Infinity}], "c": NaN}}',
            [
                "metadata.a[1]: expected a finite number, got -Infinity",
                "metadata.a[2].b: expected a finite number, got Infinity",
                "metadata.c: expected a finite number, got NaN",
            ],
        ),
        (
            b'[{"title": "a"}, {"title": "b", "metadata": {"v": -1E400}}]',
            ["[1].metadata.v: expected a finite number, got -1E400"],
        ),
        (b"1e999", ["body: expected a finite number, got 1e999"]),
    ],
)
async def test_non_finite_numbers_are_422_naming_the_field(
    receiver: Any, manager: Any, recorder: RecordingChannel, raw: bytes, problems: list[str]
) -> None:
    response = await receiver.post_raw(raw)
    assert response.status_code == 422
    assert error_of(response) == {"error": "unrecognised or invalid alert body", "detail": problems}
    await manager.drain()
    assert recorder.sent == []
    listing = await receiver.client.get(f"{receiver.base_url}/api/alerts")
    assert listing.status_code == 200 and listing.json()["count"] == 0


async def test_non_finite_in_grafana_values_named(receiver: Any) -> None:
    body = (
        b'{"receiver": "w", "status": "firing", "orgId": 1, "version": "1", "groupKey": "k",'
        b' "alerts": [{"status": "firing", "labels": {"alertname": "Mem"},'
        b' "startsAt": "2021-10-12T09:51:03Z", "values": {"B": 1e999, "C": 0.5}}]}'
    )
    response = await receiver.post_raw(body)
    assert response.status_code == 422
    assert error_of(response)["detail"] == [
        "alerts[0].values.B: expected a finite number, got 1e999"
    ]


async def test_finite_numbers_are_kept(receiver: Any, manager: Any) -> None:
    body = b'{"title": "x", "metadata": {"load": 0.75, "big": 1.7e308, "n": -3, "e": 1e-320}}'
    assert (await receiver.post_raw(body)).status_code == 200
    await manager.drain()
    listing = await receiver.client.get(f"{receiver.base_url}/api/alerts")
    assert listing.status_code == 200
    assert listing.json()["alerts"][0]["metadata"] == {
        "load": 0.75,
        "big": 1.7e308,
        "n": -3,
        "e": 1e-320,
    }


async def test_invalid_alert_reports_every_problem(am: Any, receiver: Any) -> None:
    body = am.json("firing_group")
    body["alerts"][0]["status"] = "pending"
    body["alerts"][1]["startsAt"] = "soon"
    response = await receiver.post_json(body)
    assert response.status_code == 422
    detail = error_of(response)["detail"]
    assert any("alerts[0].status: expected 'firing' or 'resolved'" in d for d in detail)
    assert any("alerts[1].startsAt: expected an RFC 3339 timestamp" in d for d in detail)


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        (None, 415),
        ("text/plain", 415),
        ("application/x-www-form-urlencoded", 415),
        ("application/json; charset=latin-1", 415),
        ("application/json", 200),
        ("application/json; charset=utf-8", 200),
        ("Application/JSON", 200),
        ("application/vnd.alerts+json", 200),
    ],
)
async def test_content_types(receiver: Any, content_type: str | None, status: int) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = await receiver.client.post(receiver.url, content=b'{"title": "x"}', headers=headers)
    assert response.status_code == status
    if status == 415:
        body = error_of(response)
        assert body["error"] in ("unsupported content type", "unsupported charset")
        if body["error"] == "unsupported content type":
            assert "expected Content-Type: application/json" in body["detail"]


async def test_body_limit_by_content_length(receiver_factory: Any) -> None:
    async with receiver_factory(max_body=1024) as r:
        response = await r.post_json({"title": "x", "message": "y" * 5000})
        assert response.status_code == 413
        assert error_of(response) == {"error": "body too large", "detail": "at most 1024 bytes"}
        assert (await r.post_json({"title": "x", "message": "y" * 900})).status_code == 200


async def test_body_limit_counts_chunked_bytes(receiver_factory: Any) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"title": "x", "message": "'
        for _ in range(6):
            yield b"y" * 256
        yield b'"}'

    async with receiver_factory(max_body=1024) as r:
        response = await r.client.post(
            r.url, content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert response.request.headers.get("transfer-encoding") == "chunked"
        assert "content-length" not in response.request.headers
        assert response.status_code == 413
        assert error_of(response)["error"] == "body too large"


async def test_endless_chunked_body_gets_413_while_still_sending(receiver_factory: Any) -> None:
    """The answer comes once the limit is passed, not after the client has sent it all."""
    async with receiver_factory(max_body=1024) as r:
        host, port = r.base_url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"POST /webhook/alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        answer = asyncio.ensure_future(reader.readuntil(b"\r\n\r\n"))
        sent = 0
        chunk = b"y" * 1024
        try:
            while not answer.done() and sent < 64 * 1024 * 1024:
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await writer.drain()
                sent += len(chunk)
                await asyncio.sleep(0)
            head = await answer
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        assert head.startswith(b"HTTP/1.1 413 ")
        assert sent < 64 * 1024 * 1024
        assert (await r.client.get(f"{r.base_url}/health")).status_code == 200


async def test_too_many_alerts(receiver_factory: Any, am: Any) -> None:
    async with receiver_factory(max_alerts=2) as r:
        response = await r.post_raw(am.raw("firing_group_updated"))
        assert response.status_code == 413
        body = error_of(response)
        assert body["error"] == "too many alerts"
        assert body["detail"] == "too many alerts in one request: 3 (at most 2)"
        assert (await r.post_raw(am.raw("firing_group"))).status_code == 200


async def test_nesting_limit(receiver_factory: Any) -> None:
    async with receiver_factory(max_depth=8) as r:
        deep: Any = "x"
        for _ in range(10):
            deep = {"a": deep}
        response = await r.post_json({"title": "x", "metadata": deep})
        assert response.status_code == 422
        assert error_of(response) == {
            "error": "JSON nested too deeply",
            "detail": "at most 8 levels",
        }
        # Far past the parser's recursion limit: still a clean 422, not a 500.
        response = await r.post_raw(b"[" * 100_000 + b"]" * 100_000)
        assert response.status_code == 422
        assert error_of(response)["error"] == "JSON nested too deeply"


async def test_unknown_paths_and_methods_are_json(receiver: Any) -> None:
    missing = await receiver.client.get(f"{receiver.base_url}/nope")
    assert missing.status_code == 404 and error_of(missing)["error"] == "Not Found"
    wrong = await receiver.client.get(receiver.url)
    assert wrong.status_code == 405 and error_of(wrong)["error"] == "Method Not Allowed"


# ---------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "error"),
    [
        (None, "missing bearer token"),
        ("", "missing bearer token"),
        ("Basic dXNlcjpwYXNz", "missing bearer token"),
        ("Bearer", "missing bearer token"),
        ("Bearer wrong-token", "invalid bearer token"),
        (f"Bearer {TOKEN}x", "invalid bearer token"),
        (f"Bearer {TOKEN[:-1]}", "invalid bearer token"),
    ],
)
async def test_token_required(
    receiver_factory: Any,
    recorder: RecordingChannel,
    manager: Any,
    authorization: str | None,
    error: str,
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    async with receiver_factory(token=TOKEN) as r:
        for path in ("/webhook/alerts", "/metrics", "/api/alerts"):
            method = r.client.post if path == "/webhook/alerts" else r.client.get
            kwargs: dict[str, Any] = {"headers": headers}
            if path == "/webhook/alerts":
                kwargs["json"] = {"title": "x"}
            response = await method(f"{r.base_url}{path}", **kwargs)
            assert response.status_code == 401, path
            assert error_of(response)["error"] == error
            assert response.headers["www-authenticate"].startswith('Bearer realm="pixalert"')
            assert TOKEN not in response.text
        # Health stays open for probes.
        assert (await r.client.get(f"{r.base_url}/health")).status_code == 200
    await manager.drain()
    assert recorder.sent == []


async def test_right_token(receiver_factory: Any, manager: Any, recorder: RecordingChannel) -> None:
    async with receiver_factory(token=TOKEN) as r:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        assert (await r.post_json({"title": "x"}, headers=headers)).status_code == 200
        lower = {"Authorization": f"bearer {TOKEN}"}
        assert (await r.client.get(f"{r.base_url}/metrics", headers=lower)).status_code == 200
    await manager.drain()
    assert len(recorder.sent) == 1


def test_bad_app_options(manager: Any) -> None:
    from pixalert_monitoring import create_app

    with pytest.raises(ValueError, match="max_body: expected a whole number >= 1"):
        create_app(manager, max_body=0)
    with pytest.raises(ValueError, match="max_inflight: expected a whole number >= 1"):
        create_app(manager, max_inflight=True)
    with pytest.raises(ValueError, match="token: expected a non-empty string"):
        create_app(manager, token="")
    with pytest.raises(ValueError, match="ingest_timeout: expected a finite duration > 0"):
        create_app(manager, ingest_timeout=float("nan"))
    with pytest.raises(ValueError, match="dedup_ttl: expected a finite duration > 0"):
        create_app(manager, dedup_ttl=0)


def test_no_repr_or_str_shows_the_token(manager: Any, tmp_path: Any) -> None:
    from pixalert_monitoring import create_app, load_monitoring_config

    app = create_app(manager, token=TOKEN)
    state = app.state.receiver
    path = tmp_path / "m.toml"
    path.write_text(f'[receiver]\ntoken = "{TOKEN}"\n', encoding="utf-8")
    config = load_monitoring_config(path, env={})
    from_env = load_monitoring_config(None, env={"PIXALERT_RECEIVER_TOKEN": TOKEN})
    shown = [repr(state), str(state), repr(state.config), str(state.config), repr(config)]
    shown += [str(config), repr(from_env), repr(config.receiver.token), str(from_env.receiver)]
    assert all(TOKEN not in text for text in shown)
    assert "max_inflight=64" in repr(state) and "Secret('**********')" in repr(state)


async def test_a_new_endpoint_is_one_function_and_one_route(
    receiver_factory: Any, manager: Any
) -> None:
    """How later endpoints are written: ``authorized()`` checks the token, ``Reject``
    answers with the JSON error body."""
    from pixalert_monitoring._receiver import Reject, authorized
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    async def echo(request: Request) -> Response:
        state = authorized(request)
        if "boom" in request.query_params:
            raise Reject(409, "conflict", "as asked")
        return JSONResponse({"inflight": state.inflight})

    async with receiver_factory(token=TOKEN) as r:
        r.app.router.routes.append(Route("/echo", echo, methods=["GET"]))
        url = f"{r.base_url}/echo"
        unauthorized = await r.client.get(url)
        assert unauthorized.status_code == 401
        assert error_of(unauthorized)["error"] == "missing bearer token"
        headers = {"Authorization": f"Bearer {TOKEN}"}
        assert (await r.client.get(url, headers=headers)).json() == {"inflight": 0}
        conflict = await r.client.get(url, params={"boom": "1"}, headers=headers)
        assert conflict.status_code == 409
        assert error_of(conflict) == {"error": "conflict", "detail": "as asked"}


# ---------------------------------------------------------------------------
# Health, metrics, history, overload
# ---------------------------------------------------------------------------


async def test_health(receiver: Any) -> None:
    response = await receiver.client.get(f"{receiver.base_url}/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["channels"]["recording"]["circuit"] == "closed"
    assert body["receiver"]["inflight"] == 0


async def test_health_is_503_with_the_reason_while_history_is_down(
    receiver: Any, manager: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    await manager.start()
    store = manager.history_store
    real_health = store.health
    down = True

    async def health() -> Any:
        # A store reports an outage in its health (as pixalert-postgres does).
        if down:
            return {"status": "degraded", "backend": "memory", "reason": "connection refused"}
        return await real_health()

    monkeypatch.setattr(store, "health", health)
    url = f"{receiver.base_url}/health"
    response = await receiver.client.get(url)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["reason"] == "history store unavailable: connection refused"
    assert body["history"]["status"] == "degraded"
    down = False
    response = await receiver.client.get(url)
    assert response.status_code == 200 and response.json()["status"] == "ok"


async def test_health_stays_200_when_only_channels_or_state_are_degraded(
    am: Any, receiver_factory: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pixalert import DeliveryError

    failing = RecordingChannel("flaky", fail=[DeliveryError("down")] * 100)
    manager = make_manager(
        [failing], clock=clock, config={**ROUTE_ALL, "delivery": {"circuit_failures": 1}}
    )
    try:
        async with receiver_factory(manager=manager) as r:
            await r.post_json({"title": "opens the circuit"})
            await manager.drain()

            async def state_health() -> Any:
                return {"status": "degraded", "backend": "redis", "reason": "fail open"}

            monkeypatch.setattr(manager.state_backend, "health", state_health)
            response = await r.client.get(f"{r.base_url}/health")
            assert response.status_code == 200
            body = response.json()
            assert body["status"] == "degraded"
            assert body["channels"]["flaky"]["circuit"] == "open"
            assert "reason" not in body
    finally:
        await manager.aclose()


async def test_health_check_that_raises_is_503(
    receiver: Any, manager: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken() -> Any:
        raise OSError("disk I/O error")

    monkeypatch.setattr(manager, "health", broken)
    response = await receiver.client.get(f"{receiver.base_url}/health")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "reason": "health check failed: OSError: disk I/O error",
    }


async def test_metrics(am: Any, receiver_factory: Any, clock: FakeClock) -> None:
    from pixalert import DeliveryError

    good = RecordingChannel("good")
    bad = RecordingChannel("bad", fail=[DeliveryError.permanent("nope")])
    manager = make_manager([good, bad], clock=clock, config=ROUTE_ALL)
    try:
        async with receiver_factory(manager=manager) as r:
            await r.post_raw(am.raw("partially_resolved"))
            await r.post_raw(am.raw("partially_resolved"))
            await r.post_raw(b"{")
            await manager.drain()
            response = await r.client.get(f"{r.base_url}/metrics")
            openmetrics = await r.client.get(
                f"{r.base_url}/metrics",
                headers={"Accept": "application/openmetrics-text; version=1.0.0"},
            )
    finally:
        await manager.aclose()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    assert 'pixalert_alerts_received_total{format="alertmanager",status="firing"} 2.0' in text
    assert 'pixalert_alerts_received_total{format="alertmanager",status="resolved"} 1.0' in text
    assert 'pixalert_alerts_duplicate_total{format="alertmanager"} 3.0' in text
    assert 'pixalert_webhook_requests_total{code="200"} 2.0' in text
    assert 'pixalert_webhook_requests_total{code="400"} 1.0' in text
    assert 'pixalert_notifications_sent_total{channel="good"} 3.0' in text
    assert 'pixalert_notifications_sent_total{channel="bad"} 2.0' in text
    assert 'pixalert_notifications_failed_total{channel="bad"} 1.0' in text
    assert 'pixalert_delivery_latency_seconds_count{channel="good"} 3.0' in text
    assert 'pixalert_delivery_latency_seconds_bucket{channel="good",le="+Inf"} 3.0' in text
    # Prometheus asking for OpenMetrics gets it.
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert openmetrics.text.rstrip().endswith("# EOF")


async def test_api_alerts(am: Any, receiver: Any, manager: Any) -> None:
    await receiver.post_raw(am.raw("firing_group"))
    await manager.drain()
    response = await receiver.client.get(f"{receiver.base_url}/api/alerts", params={"hours": 1})
    assert response.status_code == 200
    body = response.json()
    assert body["hours"] == 1 and body["count"] == 2
    assert {a["key"] for a in body["alerts"]} == {
        "alertmanager:58eb42a7154e9687",
        "alertmanager:e3d826d0c1ca4fe4",
    }
    assert all(a["results"]["recording"]["status"] == "sent" for a in body["alerts"])
    for bad in ("abc", "-1", "0", "nan", "100000"):
        response = await receiver.client.get(
            f"{receiver.base_url}/api/alerts", params={"hours": bad}
        )
        assert response.status_code == 400
        assert error_of(response)["error"] == "invalid hours"
    response = await receiver.client.get(f"{receiver.base_url}/api/alerts", params={"limit": "1.5"})
    assert response.status_code == 400 and error_of(response)["error"] == "invalid limit"


async def test_overload_is_503_never_429(
    receiver_factory: Any, manager: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = asyncio.Event()
    entered = asyncio.Event()
    real_submit_many = manager.submit_many

    async def slow_submit_many(alerts: Any, **kwargs: Any) -> list[str]:
        entered.set()
        await gate.wait()
        return await real_submit_many(alerts, **kwargs)  # type: ignore[no-any-return]

    monkeypatch.setattr(manager, "submit_many", slow_submit_many)
    async with receiver_factory(max_inflight=1) as r:
        first = asyncio.ensure_future(r.post_json({"title": "first"}))
        await entered.wait()
        second = await r.post_json({"title": "second"})
        assert second.status_code == 503
        assert second.headers["retry-after"] == "1"
        assert error_of(second)["error"] == "overloaded"
        gate.set()
        assert (await first).status_code == 200


async def test_storage_failure_is_503_and_retry_succeeds(
    am: Any,
    receiver: Any,
    manager: Any,
    recorder: RecordingChannel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await manager.start()
    store = manager.history_store
    real_record_many = store.record_many
    failing = True

    async def record_many(alerts: Any, channels: Any, **kwargs: Any) -> Any:
        if failing:
            raise OSError("database is locked")
        return await real_record_many(alerts, channels, **kwargs)

    monkeypatch.setattr(store, "record_many", record_many)
    response = await receiver.post_raw(am.raw("firing_single"))
    assert response.status_code == 503
    assert error_of(response) == {"error": "could not store the alerts", "detail": "OSError"}
    failing = False
    # Alertmanager retries a 5xx: this time it is taken.
    response = await receiver.post_raw(am.raw("firing_single"))
    assert response.status_code == 200 and response.json()["accepted"] == 1
    await manager.drain()
    assert len(recorder.sent) == 1


async def test_public_testing_helper(manager: Any, recorder: RecordingChannel) -> None:
    from pixalert_monitoring.testing import running_receiver

    async with running_receiver(manager, token=TOKEN) as base_url, httpx.AsyncClient() as client:
        response = await client.post(
            f"{base_url}/webhook/alerts",
            json={"title": "x"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert response.status_code == 200
    assert len(recorder.sent) == 1  # the app's shutdown waited for the delivery


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("example.com", False),
    ],
)
def test_loopback_detection(host: str, loopback: bool) -> None:
    from pixalert_monitoring._server import is_loopback

    assert is_loopback(host) is loopback
