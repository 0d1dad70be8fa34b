"""The webhook channel: its config and the channel that POSTs signed JSON to each target.

httpx (through :mod:`pixalert.http`) is imported only when the first alert is
sent, so loading this module stays cheap.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit

import attrs
from pixalert import Alert, DeliveryError
from pixalert.channels import (
    Group,
    Preview,
    Receipt,
    Secret,
    mask_secret_url,
    redact,
    register_secret,
)
from pixalert.storage import Clock, SystemClock

from . import __version__
from ._payload import build_group_payload, build_payload, encode_payload
from ._signing import _Signer, decode_secret

if TYPE_CHECKING:
    import httpx
    from pixalert.http import Endpoint

__all__ = ["WebhookChannel", "WebhookConfig"]

log = logging.getLogger("pixalert.webhook")

SERVICE = "webhook"
#: Per-alert delivery progress kept for retries (alert ids, oldest dropped first).
STATE_SIZE = 1024
_SNIPPET = 200
_READ_LIMIT = 2048

# Header names whose values are credentials: masked in repr, never in errors or logs.
_SENSITIVE_HEADER = re.compile(
    r"auth|token|key|secret|passw|signature|cookie|session|credential", re.IGNORECASE
)
# Headers the channel sets itself; config may not override them.
_RESERVED_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "host",
        "transfer-encoding",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }
)
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _register(value: str) -> None:
    """Register a secret and the forms it may take once quoted or unquoted."""
    for form in {value, unquote(value), quote(value, safe=""), quote_plus(value)}:
        register_secret(form)


def _to_secret(value: Any) -> Any:
    if isinstance(value, str):
        value = Secret(value.strip())
    if isinstance(value, Secret):
        _register(value.get())
    return value


def _to_optional_secret(value: Any) -> Any:
    return None if value is None else _to_secret(value)


def _to_secret_list(value: Any) -> Any:
    if value is None:
        return []
    if isinstance(value, (str, Secret)):
        # "a,b" as an environment variable holds it; a lone Secret is one URL.
        items: Iterable[Any] = (
            [s for s in value.split(",") if s.strip()] if isinstance(value, str) else [value]
        )
    elif isinstance(value, Iterable):
        items = value
    else:
        return value  # reported by the validation in __attrs_post_init__
    return [_to_secret(item) for item in items]


def _is_sensitive(name: str) -> bool:
    return bool(_SENSITIVE_HEADER.search(name))


def _headers_repr(headers: Mapping[str, str]) -> str:
    shown = {k: ("**********" if _is_sensitive(k) else v) for k, v in headers.items()}
    return repr(shown)


def _url_secrets(url: str) -> list[str]:
    """The parts of ``url`` that may be secret on their own: query values, password."""
    parts = urlsplit(url)
    found = [value for _, value in parse_qsl(parts.query, keep_blank_values=False)]
    if parts.password:
        found.append(parts.password)
    if parts.path.strip("/"):
        found.append(parts.path + (f"?{parts.query}" if parts.query else ""))
    return found


def _check_url(field: str, value: Any) -> None:
    if not isinstance(value, Secret):
        raise ValueError(f"{field}: expected a URL string, got {type(value).__name__}")
    text = value.get()
    try:
        parts = urlsplit(text)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        ok = False
    if not ok or _CONTROL.search(text) or " " in text:
        # The URL is a secret: say what is wrong without repeating it.
        raise ValueError(f"{field}: expected an http:// or https:// URL with a host")


@attrs.frozen
class WebhookConfig:
    """Settings of one webhook channel (``[channels.<name>]`` with ``type = "webhook"``).

    - ``url`` / ``urls``: the target URLs (``WEBHOOK_URLS``, comma-separated).
      Treated as secrets: a URL may carry a token in its path or query.
    - ``headers``: extra request headers; values of credential-like headers
      (``Authorization``, ``X-Api-Key``...) are treated as secrets.
    - ``secret``: a Standard Webhooks ``whsec_...`` secret (``WEBHOOK_SECRET``);
      when set, every request is signed.
    - ``extra_secrets``: more secrets to sign with while rotating keys.
    - ``timeout``: seconds per HTTP request; ``verify_tls``: check certificates.
    """

    url: Secret | None = attrs.field(default=None, converter=_to_optional_secret)
    urls: list[Secret] = attrs.field(factory=list, converter=_to_secret_list)
    headers: dict[str, str] = attrs.field(factory=dict, repr=_headers_repr)
    secret: Secret | None = attrs.field(default=None, converter=_to_optional_secret)
    extra_secrets: list[Secret] = attrs.field(factory=list, converter=_to_secret_list)
    timeout: float = 10.0
    verify_tls: bool = True

    def __attrs_post_init__(self) -> None:
        if self.url is not None:
            _check_url("url", self.url)
        if not isinstance(self.urls, list):
            raise ValueError("urls: expected a list of URLs")
        for i, item in enumerate(self.urls):
            _check_url(f"urls[{i}]", item)
        if not self.targets():
            raise ValueError("url: expected a webhook URL: set `url`, `urls` or WEBHOOK_URLS")
        for url in self.targets():
            for part in _url_secrets(url.get()):
                _register(part)
        self._check_headers()
        for field, value in [("secret", self.secret)] + [
            (f"extra_secrets[{i}]", s) for i, s in enumerate(self.extra_secrets)
        ]:
            if value is None:
                continue
            if not isinstance(value, Secret):
                raise ValueError(f"{field}: expected a 'whsec_...' string")
            try:
                decode_secret(value, strict=True)
            except ValueError as exc:
                raise ValueError(f"{field}: {exc}") from None
        if self.extra_secrets and self.secret is None:
            raise ValueError(
                "extra_secrets: expected `secret` to be set too (the current signing secret)"
            )
        if not isinstance(self.timeout, (int, float)) or self.timeout <= 0:
            raise ValueError(f"timeout: expected a number of seconds > 0, got {self.timeout!r}")

    def _check_headers(self) -> None:
        if not isinstance(self.headers, Mapping):
            raise ValueError("headers: expected a table of header names to strings")
        for name, value in self.headers.items():
            if not isinstance(name, str) or not _HEADER_NAME.match(name):
                raise ValueError(f"headers: expected valid HTTP header names, got {name!r}")
            if name.lower() in _RESERVED_HEADERS:
                raise ValueError(
                    f"headers: expected no {name!r} header: the webhook channel sets it itself"
                )
            if not isinstance(value, str) or _CONTROL.search(value):
                raise ValueError(
                    f"headers: expected a string without control characters for {name!r}"
                )
            if not value.isascii():
                # httpx sends header values as ASCII; say so now, not on every send.
                raise ValueError(f"headers: expected ASCII text for {name!r}")
            if _is_sensitive(name):
                _register(value)
                token = value.partition(" ")[2]
                if token.strip():
                    _register(token.strip())

    def targets(self) -> list[Secret]:
        """Every target URL, ``url`` first, without duplicates."""
        seen: set[str] = set()
        out = []
        for item in ([self.url] if self.url is not None else []) + list(self.urls):
            if item.get() not in seen:
                seen.add(item.get())
                out.append(item)
        return out

    def signing_keys(self) -> list[bytes]:
        """The HMAC keys to sign with: ``secret`` then ``extra_secrets`` (empty: unsigned)."""
        if self.secret is None:
            return []
        return [decode_secret(s) for s in [self.secret, *self.extra_secrets]]

    def secret_texts(self) -> list[str]:
        """Every string that must never appear in an error (for redaction)."""
        out: list[str] = []
        for url in self.targets():
            out.append(url.get())
            out.extend(_url_secrets(url.get()))
        for s in [self.secret, *self.extra_secrets]:
            if s is not None:
                out.append(s.get())
        for name, value in self.headers.items():
            if _is_sensitive(name):
                out.append(value)
                out.append(value.partition(" ")[2].strip())
        forms = {f for text in out if text for f in (text, unquote(text), quote(text, safe=""))}
        return sorted(forms, key=len, reverse=True)


class WebhookChannel:
    """POSTs each alert as versioned JSON to every target URL of its config.

    One pooled HTTP client per channel. Requests carry ``webhook-id`` (stable
    for one alert and target, across retries), ``webhook-timestamp`` and, with
    a secret, ``webhook-signature``. When some targets fail, the channel
    remembers which ones accepted the alert, so the core's retry of the same
    alert only goes to the others.
    """

    def __init__(
        self,
        name: str,
        config: WebhookConfig,
        *,
        clock: Clock | None = None,
        state_size: int = STATE_SIZE,
    ) -> None:
        self.name = name
        self.config = config
        self._clock: Clock = clock or SystemClock()
        self._targets = config.targets()
        self._keys = config.signing_keys()
        self._sign = _Signer(self._keys) if self._keys else None
        self._secrets = config.secret_texts()
        self._headers = {
            "content-type": "application/json",
            "user-agent": f"pixalert-webhook/{__version__}",
            **config.headers,
        }
        self._client: httpx.AsyncClient | None = None
        # One prepared endpoint per target: URL parsed and headers encoded once.
        self._endpoints: list[Endpoint] = []
        # alert id -> {target index: None (accepted) or the permanent failure}
        self._progress: OrderedDict[str, dict[int, str | None]] = OrderedDict()
        self._state_size = max(1, state_size)
        self._id_hash = hashlib.sha256(f"{name}\0".encode())

    def __repr__(self) -> str:
        return (
            f"WebhookChannel(name={self.name!r}, targets={len(self._targets)}, "
            f"signed={bool(self._keys)})"
        )

    def webhook_id(self, alert_id: str, index: int) -> str:
        """The ``webhook-id`` of ``alert_id`` to target ``index``: the same on every retry."""
        digest = self._id_hash.copy()  # sha256 of "{name}\0" computed once
        digest.update(f"{alert_id}\0{index}".encode())
        return f"msg_{digest.hexdigest()[:32]}"

    def _webhook_ids(self, alert_id: str) -> list[str]:
        return [self.webhook_id(alert_id, i) for i in range(len(self._targets))]

    def _service(self, index: int) -> str:
        if len(self._targets) == 1:
            return SERVICE
        return f"{SERVICE} target {index + 1}"

    def _progress_for(self, alert_id: str) -> dict[int, str | None]:
        done = self._progress.get(alert_id)
        if done is None:
            done = {}
            self._progress[alert_id] = done
            while len(self._progress) > self._state_size:
                self._progress.popitem(last=False)
        else:
            self._progress.move_to_end(alert_id)
        return done

    def _get_endpoints(self) -> list[Endpoint]:
        if self._client is None:
            from pixalert.http import Endpoint, make_client

            client = make_client(timeout=self.config.timeout, verify=self.config.verify_tls)
            self._endpoints = [
                Endpoint(client, target.get(), headers=self._headers) for target in self._targets
            ]
            self._client = client
        return self._endpoints

    async def send(self, alert: Alert, *, previous: Receipt | None = None) -> Receipt | None:
        """POST ``alert`` to every target that has not accepted it yet.

        Returns ``{"webhook_ids": ..., "targets": ...}``. Raises
        :class:`pixalert.DeliveryError` naming the failed targets by number
        (never by URL); it is retryable when any failure may pass on retry.
        """
        return await self._post(encode_payload(build_payload(alert)), alert.id)

    def render(self, alert: Alert) -> Preview:
        """What :meth:`send` would POST for ``alert``: the JSON ``body`` (the payload)
        and, per target, its ``url`` (scheme and host only: the rest may be a secret)
        and ``headers``, ``webhook-signature`` included, signed as a send now would be.
        Sends nothing."""
        return self._preview(build_payload(alert), alert.id)

    def render_group(self, group: Group) -> Preview:
        """What :meth:`send_group` would POST for ``group`` (see :meth:`render`)."""
        return self._preview(build_group_payload(group), self._group_ident(group))

    def _preview(self, payload: dict[str, Any], ident: str) -> Preview:
        body = encode_payload(payload)
        timestamp = b"%d" % int(self._clock.now())
        targets = []
        for index, (target, msg_id) in enumerate(
            zip(self._targets, self._webhook_ids(ident), strict=True)
        ):
            # Credential-like headers are secrets: shown masked.
            headers = {k: redact(v, self._secrets) for k, v in self._headers.items()}
            headers.update(
                (k.decode(), v.decode()) for k, v in self._request_headers(msg_id, timestamp, body)
            )
            targets.append(
                {"target": index + 1, "url": mask_secret_url(target.get()), "headers": headers}
            )
        content = {"method": "POST", "targets": targets, "body": payload}
        sketch = json.dumps(payload, indent=2, ensure_ascii=False)
        return Preview("webhook", content, sketch, body, "application/json")

    def _request_headers(
        self, msg_id: str, timestamp: bytes, body: bytes
    ) -> list[tuple[bytes, bytes]]:
        """The per-request headers of ``body``: ``webhook-id``, ``webhook-timestamp`` and,
        with a secret, ``webhook-signature``."""
        raw_id = msg_id.encode()
        headers = [(b"webhook-id", raw_id), (b"webhook-timestamp", timestamp)]
        if self._sign is not None:
            headers.append((b"webhook-signature", self._sign(raw_id, timestamp, body)))
        return headers

    @staticmethod
    def _group_ident(group: Group) -> str:
        return f"group\0{group.key}\0{group.created_at.isoformat()}"

    async def send_group(self, group: Group, *, previous: Receipt | None = None) -> Receipt | None:
        """POST one body for a group of alerts (see :func:`build_group_payload`) to every
        target; its ``webhook-id`` is the same on every retry of one notification."""
        return await self._post(
            encode_payload(build_group_payload(group)), self._group_ident(group)
        )

    async def _post(self, body: bytes, ident: str) -> Receipt:
        """POST ``body`` to every target that has not accepted ``ident`` yet."""
        done = self._progress_for(ident)
        ids = self._webhook_ids(ident)
        retryable: dict[int, DeliveryError] = {}
        if len(done) < len(ids):
            endpoints = self._get_endpoints()
            timestamp = b"%d" % int(self._clock.now())
            pending = [i for i in range(len(ids)) if i not in done]
            if len(pending) == 1:  # no task for a single target
                index = pending[0]
                outcomes = [
                    await self._deliver(endpoints[index], index, ids[index], timestamp, body, done)
                ]
            else:
                outcomes = await asyncio.gather(
                    *(
                        self._deliver(endpoints[i], i, ids[i], timestamp, body, done)
                        for i in pending
                    )
                )
            for index, error in zip(pending, outcomes, strict=True):
                if error is not None and error.retryable:
                    retryable[index] = error
        failed = {i: msg for i, msg in done.items() if msg is not None}
        failed.update({i: err.message for i, err in retryable.items()})
        if not failed:
            return {"webhook_ids": " ".join(ids), "targets": str(len(ids))}
        error = self._combine(failed, retryable)
        raise error

    def _combine(
        self, failed: dict[int, str], retryable: dict[int, DeliveryError]
    ) -> DeliveryError:
        reasons = [failed[i] for i in sorted(failed)]
        total = len(self._targets)
        if total == 1:
            message = reasons[0]
        else:
            accepted = total - len(failed)
            message = f"{SERVICE}: {accepted} of {total} targets accepted; " + "; ".join(reasons)
        delays = [e.retry_after for e in retryable.values() if e.retry_after is not None]
        return DeliveryError(
            message,
            retryable=bool(retryable),
            retry_after=max(delays) if delays else None,
        )

    async def _deliver(
        self,
        endpoint: Endpoint,
        index: int,
        msg_id: str,
        timestamp: bytes,
        body: bytes,
        done: dict[int, str | None],
    ) -> DeliveryError | None:
        """One attempt to one target; records the outcome in ``done`` as soon as it is known."""
        import httpx

        headers = self._request_headers(msg_id, timestamp, body)
        error: DeliveryError
        try:
            response = await endpoint.send(body, headers)
            try:
                status = response.status_code
                if 200 <= status < 300:
                    done[index] = None
                    if log.isEnabledFor(logging.DEBUG):
                        log.debug(
                            "channel %s: %s accepted (HTTP %d)",
                            self.name,
                            self._service(index),
                            status,
                        )
                    return None
                snippet = await _read_some(response)
                error = self._error_for(response, self._service(index), snippet)
            finally:
                if not response.is_closed:  # the body is unread: close it
                    await response.aclose()
        except httpx.HTTPError as exc:
            error = _transport_error(exc, self._service(index))
        except Exception as exc:
            error = DeliveryError(f"{self._service(index)}: request failed ({type(exc).__name__})")
        if not error.retryable:
            done[index] = error.message
        log.debug("channel %s: %s", self.name, error.message)
        return error

    def _error_for(self, response: httpx.Response, service: str, snippet: bytes) -> DeliveryError:
        from pixalert.http import error_for_response

        detail = " ".join(snippet.decode("utf-8", errors="replace").split())[:_SNIPPET]
        if response.status_code == 410:
            detail = "endpoint gone" + (f": {detail}" if detail else "")
        return error_for_response(response, service, detail=detail, secrets=self._secrets)

    async def aclose(self) -> None:
        """Close the HTTP client (safe to call twice)."""
        client, self._client = self._client, None
        self._endpoints = []
        if client is not None:
            await client.aclose()


def _transport_error(exc: Exception, service: str) -> DeliveryError:
    """A transport failure as a URL-free :class:`DeliveryError`.

    Over aiohttp's transport a refused connection arrives as
    ``httpx.ConnectTimeout``; its cause (an ``OSError`` that is not a timeout)
    tells the two apart, so the message says what really happened.
    """
    import httpx
    from pixalert.http import error_for_exception

    cause = exc.__cause__
    if (
        isinstance(exc, httpx.ConnectTimeout)
        and isinstance(cause, OSError)
        and not isinstance(cause, TimeoutError)
    ):
        return DeliveryError(f"{service}: connection failed ({type(cause).__name__})")
    return error_for_exception(exc, service)


async def _read_some(response: httpx.Response) -> bytes:
    """At most a few KB of an error response's body (it only feeds the error message)."""
    data = b""
    try:
        async for chunk in response.aiter_bytes():
            data += chunk
            if len(data) >= _READ_LIMIT:
                break
    except Exception:
        pass
    return data[:_READ_LIMIT]
