"""A local webhook receiver that enforces pixalert's webhook contract, for tests and demos.

:class:`WebhookReceiver` is a :class:`pixalert.testing.FakeService`: a real
HTTP server on 127.0.0.1 (a random port). For each ``POST`` it checks what a
careful receiver checks:

- ``Content-Type: application/json`` (else 415);
- a ``webhook-id`` header without ``.`` and an integer ``webhook-timestamp`` (else 400);
- with ``secret=``: the Standard Webhooks signature and timestamp, with
  :func:`pixalert_webhook.verify` (else 401);
- with ``token=``: a ``?token=`` query parameter equal to it (else 401);
- the body against the payload's JSON Schema: the single-alert one, or for
  ``group.*`` bodies the group one (else 400; needs ``jsonschema``, from
  ``pip install pixalert-webhook[testing]``).

A delivery whose ``webhook-id`` was already accepted is answered 200 with the
outcome ``duplicate``, not delivered twice. Accepted deliveries are in
:attr:`~pixalert.testing.FakeService.received` (:class:`Delivery` records);
every request (faults and rejections too) is in
:attr:`~pixalert.testing.FakeService.requests`, its ``endpoint`` being its
path. Faults are scripted with FakeService's verbs: ``fail`` (any status,
``Retry-After``, a body that may be built from the request), ``hang`` and
``drop``, each for any path or one ``endpoint``.

Test your own alerts end to end::

    from pixalert_webhook.testing import WebhookReceiver

    async with WebhookReceiver(secret="whsec_...") as receiver:
        manager = NotificationManager(config={"channels": {"webhook": receiver.config()}})
        await manager.send_alert("Disk full", "95% on db-1", "high", channels=["webhook"])
        assert receiver.received[0].data["title"] == "Disk full"

It also serves as the ``webhook`` sink of ``pixalert demo``.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs
from aiohttp import web
from pixalert.testing import FakeService, ReceivedRequest

from ._payload import group_payload_schema, payload_schema
from ._signing import SecretLike, WebhookVerificationError, verify

__all__ = ["Delivery", "WebhookReceiver"]


@attrs.frozen
class Delivery:
    """One accepted (first-time, valid) webhook request; ``headers`` have lower-case names."""

    webhook_id: str
    timestamp: int
    path: str
    headers: dict[str, str]
    body: bytes
    payload: dict[str, Any]
    signed: bool

    @property
    def type(self) -> str:
        """The event type, ``alert.firing`` or ``alert.resolved`` (``group.firing`` or
        ``group.resolved`` for a group)."""
        return str(self.payload["type"])

    @property
    def is_group(self) -> bool:
        """True for a group's body (``data`` has ``group``, ``alerts`` and ``truncated``)."""
        return self.type.startswith("group.")

    @property
    def data(self) -> dict[str, Any]:
        """The alert, as sent (``payload["data"]``)."""
        data: dict[str, Any] = self.payload["data"]
        return data

    def line(self) -> str:
        """``POST /hook alert.firing HIGH Disk full (signed)``."""
        mark = "signed" if self.signed else "unsigned"
        if self.is_group:
            group = self.data["group"]
            count = len(self.data["alerts"]) + self.data["truncated"]
            labels = ", ".join(f"{k}={v}" for k, v in group["labels"].items())
            what = f"{group['priority']} {count} alerts {labels}".rstrip()
            return f"POST {self.path} {self.type} {what} ({mark})"
        return f"POST {self.path} {self.type} {self.data['priority']} {self.data['title']} ({mark})"


class WebhookReceiver(FakeService[Delivery]):
    """A contract-enforcing webhook endpoint on 127.0.0.1 (see the module docstring).

    :param secret: the ``whsec_`` secret (or several) to verify signatures
        with; None accepts unsigned requests and does not check signatures.
    :param path: the path of :attr:`url` (any path is served).
    :param token: when set, requests must carry ``?token=<token>``.
    :param tolerance: seconds of clock skew allowed on ``webhook-timestamp``.
    :param now: the receiver's clock (epoch seconds), e.g. a ``FakeClock.now``.
    :param validate_schema: check bodies against the JSON Schema; None does
        so when ``jsonschema`` is installed.
    :param success_status: the status answered for an accepted delivery.
    """

    channel_type = "webhook"

    def __init__(
        self,
        *,
        secret: SecretLike | list[SecretLike] | None = None,
        path: str = "/hook",
        token: str | None = None,
        tolerance: float = 300,
        now: Callable[[], float] | None = None,
        validate_schema: bool | None = None,
        success_status: int = 200,
    ) -> None:
        if not path.startswith("/"):
            raise ValueError("path: expected a path starting with '/'")
        if not 200 <= success_status < 300:
            raise ValueError("success_status: expected a 2xx status")
        super().__init__()
        self.secret = secret
        self.path = path
        self.token = token
        self.tolerance = tolerance
        self.now = now or time.time
        self.validate_schema = validate_schema
        self.success_status = success_status
        self._seen: set[str] = set()
        self._validator = self._make_validator()
        self._group_validator = self._make_validator(group=True)

    def config(self) -> dict[str, Any]:
        """The channel config section for this receiver: ``urls``, and ``secret`` if a string."""
        section: dict[str, Any] = {"urls": [self.url]}
        first = self.secret[0] if isinstance(self.secret, list) and self.secret else self.secret
        if isinstance(first, str):
            section["secret"] = first
        return section

    def url_for(self, path: str | None = None, *, token: str | None = None) -> str:
        """The URL of ``path`` on this receiver, with ``?token=`` when one is set or given."""
        path = self.path if path is None else path
        token = self.token if token is None else token
        query = f"?token={token}" if token else ""
        return f"http://{self.host}:{self.port}{path}{query}"

    @property
    def url(self) -> str:
        """The URL a channel should POST to."""
        return self.url_for()

    # -- serving -------------------------------------------------------------

    def _make_validator(self, *, group: bool = False) -> Any:
        if self.validate_schema is False:
            return None
        try:
            import jsonschema
        except ImportError:
            if self.validate_schema:
                raise RuntimeError(
                    "WebhookReceiver(validate_schema=True) needs jsonschema: "
                    "pip install 'pixalert-webhook[testing]'"
                ) from None
            return None
        schema = group_payload_schema() if group else payload_schema()
        cls = jsonschema.validators.validator_for(schema)
        return cls(schema, format_checker=cls.FORMAT_CHECKER)

    async def handle(self, request: web.Request, record: ReceivedRequest) -> web.StreamResponse:
        """Check one request against the contract; deliver it once."""
        headers = record.headers
        msg_id, stamp = headers.get("webhook-id"), headers.get("webhook-timestamp")

        def refuse(status: int, reason: str) -> web.Response:
            self.reject(record, reason)
            return web.json_response({"error": reason}, status=status)

        if request.method != "POST":
            return refuse(405, f"method {request.method} not allowed")
        if self.token is not None:
            given = request.query.get("token", "")
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return refuse(401, "missing or wrong token")
        if request.content_type != "application/json":
            return refuse(415, "expected Content-Type: application/json")
        if not msg_id or "." in msg_id:
            return refuse(400, "missing or invalid webhook-id header")
        if not stamp or not stamp.isdigit():
            return refuse(400, "missing or invalid webhook-timestamp header")

        signed = False
        if self.secret is not None:
            try:
                payload = verify(
                    self.secret, headers, record.body, tolerance=self.tolerance, now=self.now()
                )
            except WebhookVerificationError as exc:
                return refuse(401, str(exc))
            signed = True
        else:
            try:
                payload = json.loads(record.body)
            except ValueError:
                return refuse(400, "body is not valid JSON")

        problem = self._schema_problem(payload)
        if problem:
            return refuse(400, problem)

        if msg_id in self._seen:
            self.mark(record, "duplicate")
            return web.Response(status=self.success_status)
        self._seen.add(msg_id)
        delivery = Delivery(
            webhook_id=msg_id,
            timestamp=int(stamp),
            path=record.path,
            headers={k.lower(): v for k, v in headers.items()},
            body=record.body,
            payload=payload,
            signed=signed,
        )
        self.accept(record, delivery, line=delivery.line())
        return web.Response(status=self.success_status)

    def _schema_problem(self, payload: Any) -> str | None:
        if not isinstance(payload, Mapping):
            return "schema: expected a JSON object"
        grouped = str(payload.get("type", "")).startswith("group.")
        validator = self._group_validator if grouped else self._validator
        if validator is None:
            missing = {"type", "timestamp", "version", "data"} - set(payload)
            return f"schema: missing {sorted(missing)}" if missing else None
        errors = sorted(validator.iter_errors(payload), key=lambda e: list(e.path))
        if not errors:
            return None
        first = errors[0]
        where = "/".join(str(p) for p in first.path) or "(root)"
        return f"schema: {first.message} at {where}"
