"""FakeService: the one verb set of every loopback contract server, over real HTTP.

Each test talks to a running :class:`pixalert.testing.FakeService` on
127.0.0.1 with httpx, as a channel would. The last ones run the channel
conformance suite against it with the suite's defaults (provoke and delivered
come from the service).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any

import attrs
import httpx
import pytest
from aiohttp import web
from pixalert import Alert, DeliveryError
from pixalert.channels import ChannelSpec, DemoSink
from pixalert.testing import (
    ChannelContract,
    FakeService,
    Fault,
    ReceivedRequest,
    check_channel_contract,
)


@pytest.fixture
async def service() -> AsyncIterator[FakeService[Any]]:
    async with FakeService() as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as http:
        yield http


async def test_used_as_is_it_accepts_every_request_and_records_it(
    service: FakeService[Any], client: httpx.AsyncClient
) -> None:
    response = await client.post(service.url + "/hook?x=1", json={"a": 1}, headers={"X-Key": "k"})
    assert (response.status_code, response.json()) == (200, {"ok": True})
    [record] = service.requests
    assert service.received == [record]
    assert service.lines() == ["POST /hook"]
    assert (record.endpoint, record.method, record.path) == ("/hook", "POST", "/hook")
    assert record.url == service.url + "/hook?x=1"
    assert record.headers["x-key"] == "k"  # any case
    assert record.json() == {"a": 1}
    assert (record.status, record.answer, record.outcome) == (200, {"ok": True}, "accepted")
    assert record.connection == 1


async def test_fail_answers_the_next_requests_then_service_resumes(
    service: FakeService[Any], client: httpx.AsyncClient
) -> None:
    service.fail(503, times=2, retry_after=7)
    statuses = [(await client.post(service.url + "/a")).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    first = service.requests[0]
    assert (first.status, first.outcome, first.reason) == (503, "fault", "status 503")
    assert len(service.received) == 1


@pytest.mark.parametrize(
    ("retry_after", "header"),
    [(7, "7"), (1.5, "1.5"), ("Wed, 21 Oct 2037 07:28:00 GMT", "Wed, 21 Oct 2037 07:28:00 GMT")],
)
async def test_retry_after_becomes_the_header(
    service: FakeService[Any], client: httpx.AsyncClient, retry_after: Any, header: str
) -> None:
    service.fail(429, retry_after=retry_after)
    response = await client.post(service.url)
    assert (response.status_code, response.headers["Retry-After"]) == (429, header)


@pytest.mark.parametrize(
    ("body", "content_type", "text"),
    [
        (None, None, ""),
        ("plain words", "text/plain", "plain words"),
        (b"\x00raw", "application/octet-stream", "\x00raw"),
        ({"error": "nope"}, "application/json", '{"error": "nope"}'),
        (lambda r: f"error at {r.url}", "text/plain", "error at URL"),
    ],
)
async def test_a_fault_body_is_text_bytes_json_or_built_from_the_request(
    service: FakeService[Any],
    client: httpx.AsyncClient,
    body: Any,
    content_type: str | None,
    text: str,
) -> None:
    service.fail(500, body=body, headers={"X-Fault": "yes"})
    response = await client.post(service.url + "/p")
    assert response.status_code == 500 and response.headers["X-Fault"] == "yes"
    assert response.text == text.replace("URL", service.url + "/p")
    if content_type:
        assert response.headers["Content-Type"].startswith(content_type)


async def test_faults_go_in_order_and_only_to_their_endpoint(
    service: FakeService[Any], client: httpx.AsyncClient
) -> None:
    service.fail(410, endpoint="/gone")
    service.fail(502)
    assert (await client.post(service.url + "/other")).status_code == 502
    assert (await client.post(service.url + "/other")).status_code == 200
    assert (await client.post(service.url + "/gone")).status_code == 410
    assert [len(service.requests_to(p)) for p in ("/other", "/gone")] == [2, 1]


async def test_hang_holds_the_answer_until_release_then_answers_as_usual(
    service: FakeService[Any], client: httpx.AsyncClient
) -> None:
    service.hang()
    pending = asyncio.ensure_future(client.post(service.url + "/slow"))
    await service.wait_until(lambda s: s.hanging == 1)
    [held] = service.requests
    assert (held.status, held.outcome, held.reason) == (None, "fault", "hang")
    service.release()
    assert (await pending).status_code == 200
    assert (held.status, held.outcome) == (200, "accepted")
    assert service.hanging == 0


async def test_release_cancels_hangs_not_started_yet(
    service: FakeService[Any], client: httpx.AsyncClient
) -> None:
    service.hang(times=3)
    service.release()
    assert (await client.post(service.url)).status_code == 200


async def test_stop_drops_held_requests(client: httpx.AsyncClient) -> None:
    service: FakeService[Any] = FakeService()
    await service.start()
    service.hang()
    pending = asyncio.ensure_future(client.post(service.url))
    await service.wait_for_requests(1)
    await service.stop()
    with pytest.raises(httpx.HTTPError):
        await pending
    [held] = service.requests
    assert (held.status, held.outcome, held.reason) == (None, "fault", "hang")


async def test_drop_closes_the_connection_without_answering(
    service: FakeService[Any], client: httpx.AsyncClient
) -> None:
    service.drop()
    with pytest.raises(httpx.RemoteProtocolError):
        await client.post(service.url + "/cut")
    [dropped] = service.requests
    assert (dropped.status, dropped.outcome, dropped.reason) == (None, "fault", "drop")
    assert (await client.post(service.url + "/cut")).status_code == 200


async def test_refused_url_is_the_same_url_where_nothing_listens(
    service: FakeService[Any], client: httpx.AsyncClient
) -> None:
    refused = service.refused_url(service.url + "/hook?token=t")
    assert refused == f"http://127.0.0.1:{service.refused_port}/hook?token=t"
    assert service.refused_url() == f"http://127.0.0.1:{service.refused_port}"
    with pytest.raises(httpx.ConnectError):
        await client.post(refused)
    assert service.requests == []


async def test_connections_are_numbered(service: FakeService[Any]) -> None:
    async with httpx.AsyncClient() as first, httpx.AsyncClient() as second:
        await first.post(service.url)
        await first.post(service.url)
        await second.post(service.url)
    assert [r.connection for r in service.requests] == [1, 1, 2]


async def test_wait_for_returns_what_was_received(
    service: FakeService[Any], client: httpx.AsyncClient
) -> None:
    waiting = asyncio.ensure_future(service.wait_for(2))
    await client.post(service.url + "/1")
    await client.post(service.url + "/2")
    assert [r.path for r in await waiting] == ["/1", "/2"]
    with pytest.raises(TimeoutError, match=r"FakeService: condition not met within 0\.01 s"):
        await service.wait_for(3, timeout=0.01)


async def test_reset_forgets_requests_received_and_faults(
    service: FakeService[Any], client: httpx.AsyncClient
) -> None:
    await client.post(service.url)
    service.fail(500)
    service.reset()
    assert (service.requests, service.received, service.lines()) == ([], [], [])
    assert (await client.post(service.url)).status_code == 200


def test_bad_scripts_are_refused_with_a_clear_error() -> None:
    service: FakeService[Any] = FakeService()
    with pytest.raises(ValueError, match="status: expected a status from 100 to 599, got 99"):
        service.fail(99)
    with pytest.raises(ValueError, match="times: expected 1 or more, got 0"):
        service.hang(times=0)
    with pytest.raises(RuntimeError, match="FakeService: not started"):
        _ = service.url


async def test_start_twice_keeps_the_port_and_it_is_a_demo_sink() -> None:
    service: FakeService[Any] = FakeService()
    assert isinstance(service, DemoSink)
    try:
        config = await service.start()
        assert config == {"url": service.url}
        port = service.port
        await service.start()
        assert service.port == port
    finally:
        await service.stop()
        await service.stop()


# ---------------------------------------------------------------------------
# A service of one's own, and the conformance suite on it
# ---------------------------------------------------------------------------


class Notes(FakeService[str]):
    """A tiny service: ``POST /notes`` with a ``{"note": ...}`` body and a bearer token."""

    channel_type = "notes"
    endpoints = ("notes",)

    def __init__(self) -> None:
        super().__init__()
        self.token = "notes-secret-token"

    def config(self) -> dict[str, Any]:
        return {"url": self.url + "/notes", "token": self.token}

    def routes(self) -> Iterable[tuple[str, str, Any]]:
        return [("POST", "/notes", self._post)]

    def endpoint(self, request: web.Request) -> str:
        return "notes"

    def fault_body(self, fault: Fault) -> Any:
        return {"error": f"fault {fault.status}"}

    async def _post(self, request: web.Request, record: ReceivedRequest) -> web.Response:
        if record.headers.get("Authorization") != f"Bearer {self.token}":
            self.reject(record, "bad token")
            return web.json_response({"error": "bad token"}, status=401)
        note = record.json().get("note")
        if not isinstance(note, str):
            self.reject(record, "note: expected a string")
            return web.json_response({"error": "note: expected a string"}, status=400)
        self.accept(record, note, line=f"note: {note}")
        return web.json_response({"ok": True})


@attrs.define
class NotesConfig:
    url: str
    token: str = attrs.field(repr=False)


class NotesChannel:
    """A plain httpx channel for :class:`Notes`."""

    def __init__(self, name: str, config: NotesConfig) -> None:
        self.name = name
        self.config = config
        self._http = httpx.AsyncClient(timeout=5)

    def __repr__(self) -> str:
        return f"NotesChannel({self.name!r})"

    async def send(self, alert: Alert, *, previous: Any = None) -> None:
        headers = {"Authorization": f"Bearer {self.config.token}"}
        try:
            response = await self._http.post(
                self.config.url, json={"note": alert.title}, headers=headers
            )
        except httpx.TransportError as exc:
            raise DeliveryError(f"notes: {type(exc).__name__}") from None
        status = response.status_code
        if status == 429:
            retry_after = float(response.headers["Retry-After"])
            raise DeliveryError("notes: HTTP 429", retry_after=retry_after)
        if status >= 500:
            raise DeliveryError(f"notes: HTTP {status}")
        if status >= 400:
            raise DeliveryError.permanent(f"notes: HTTP {status}")

    async def aclose(self) -> None:
        await self._http.aclose()


NOTES = ChannelSpec(name="notes", config_type=NotesConfig, factory=NotesChannel)


async def test_a_service_of_ones_own_keeps_its_wire_checks(client: httpx.AsyncClient) -> None:
    async with Notes() as notes:
        url, token = notes.config()["url"], notes.token
        auth = {"Authorization": f"Bearer {token}"}
        assert (await client.post(url, json={"note": 1}, headers=auth)).status_code == 400
        assert (await client.post(url, json={"note": "x"})).status_code == 401
        assert (await client.post(url, json={"note": "hi"}, headers=auth)).status_code == 200
        notes.fail(503)
        faulted = await client.post(url, json={"note": "hi"}, headers=auth)
        assert faulted.json() == {"error": "fault 503"}
        with pytest.raises(ValueError, match="endpoint: expected one of notes, got 'note'"):
            notes.fail(500, endpoint="note")
    assert notes.received == ["hi"] and notes.lines() == ["note: hi"]
    assert [r.reason for r in notes.rejections] == ["note: expected a string", "bad token"]


async def test_the_function_form_takes_the_service() -> None:
    async with Notes() as notes:
        report = await check_channel_contract(NOTES, notes.config(), service=notes)
    assert [r.name for r in report.skipped] == ["unreachable"]


class TestNotesContract(ChannelContract):
    """The suite's defaults provoke failures with the service's verbs and count received."""

    spec = NOTES
    secrets = ("notes-secret-token",)

    def server(self) -> Notes:
        return Notes()

    def make_config(self, server: Notes) -> dict[str, Any]:
        return server.config()

    def unreachable_config(self, server: Notes) -> dict[str, Any]:
        return {**server.config(), "url": server.refused_url(server.config()["url"])}


class NoRateLimit(Notes):
    failures = {"permanent": {"status": 400}, "retryable": {"status": 503}}


def test_a_kind_missing_from_failures_is_skipped() -> None:
    import unittest

    class Contract(TestNotesContract):
        def server(self) -> Notes:
            return NoRateLimit()

    with pytest.raises(unittest.SkipTest, match=r"NoRateLimit\.failures has no 'rate_limited'"):
        Contract().run_check("rate_limited")
