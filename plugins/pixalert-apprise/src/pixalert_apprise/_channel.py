"""The Apprise channel: one Apprise object per service, sent through ``Apprise.async_notify``.

Each service is its own ``apprise.Apprise`` so that each gets the body in its
own format, each result is read on its own, and the retry of a partly
delivered alert goes only to the services that did not take it.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import Counter, OrderedDict
from collections.abc import Sequence
from typing import Any

import attrs
from pixalert import Alert, DeliveryError
from pixalert.channels import Preview, Receipt, redact

from . import _logs
from ._config import AppriseConfig, _apprise, scheme_of
from ._render import FORMATS, notify_type, render_body, render_title

__all__ = ["AppriseChannel", "classify"]

log = logging.getLogger("pixalert.apprise")

#: Per-alert delivery progress kept for retries (alert ids, oldest dropped first).
STATE_SIZE = 1024
_DETAIL = 200
# What Apprise's services write when a request fails: "..., error=404."
_HTTP_STATUS = re.compile(r"\berror=(\d{3})\b")
# Its email service when a server refuses a recipient: "... was refused: 550 ..."
_SMTP_REFUSED = re.compile(r"\bwas refused: ([245]\d\d)\b")
_RETRYABLE_HTTP = frozenset({408, 425, 429})


@attrs.define
class _Target:
    index: int
    label: str
    scheme: str
    body_format: str
    notifier: Any


def _format_of(service: Any) -> str:
    """The body format ``service`` renders by default (honouring its ``?format=``)."""
    try:
        value = service.resolve_format(None)
        text = str(getattr(value, "value", value)).lower()
    except Exception:
        text = "text"
    return text if text in FORMATS else "text"


def _scheme(service: Any, url: str | None) -> str:
    scheme = scheme_of(url) if url else None
    if scheme is None:
        try:
            scheme = scheme_of(service.url(privacy=True))
        except Exception:
            scheme = None
    return scheme or str(getattr(service, "protocol", "") or "apprise")


def _tame(service: Any) -> None:
    """Leave retrying and pacing to pixalert: no Apprise retry, wait or throttle."""
    service.retry = 0
    service.wait = 0.0
    service.request_rate_per_sec = 0.0


def _reason(messages: Sequence[str]) -> str:
    for message in messages:
        text = " ".join(redact(message).split())
        if text:
            return text if len(text) <= _DETAIL else text[: _DETAIL - 1] + "…"
    return ""


def classify(result: Any, label: str, timeout: float) -> DeliveryError | None:
    """What one ``AppriseResult`` means for pixalert: None when delivered, else the error.

    Apprise 2.x reports each service's status (success, failure, timeout) and
    the log lines it wrote while trying. A timeout, an HTTP 408, 425, 429 or
    5xx, a connection error and any failure Apprise gives no reason for are
    retryable; another HTTP status (a 4xx, a 3xx) and an SMTP 5xx refusal are
    permanent.
    """
    if bool(result):
        return None
    services = list(result)
    if not services:
        status = getattr(result.status, "name", str(result.status)).lower()
        return DeliveryError(f"{label}: Apprise sent nothing ({status})")
    failures: list[DeliveryError] = []
    for service_result in services:
        if bool(service_result):
            continue
        if getattr(service_result.status, "name", "") == "TIMEOUT":
            failures.append(DeliveryError(f"{label}: timed out after {timeout:g}s"))
            continue
        messages = [str(entry.message) for entry in service_result.logs()]
        reason = _reason(messages)
        detail = f" ({reason})" if reason else ""
        joined = "\n".join(messages)
        codes = _HTTP_STATUS.findall(joined)
        refused = _SMTP_REFUSED.findall(joined)
        if codes:
            code = int(codes[-1])
            retryable = code in _RETRYABLE_HTTP or code >= 500
            failures.append(DeliveryError(f"{label}: HTTP {code}{detail}", retryable=retryable))
        elif refused:
            code = int(refused[-1])
            failures.append(
                DeliveryError(f"{label}: SMTP {code}{detail}", retryable=not 500 <= code < 600)
            )
        elif "connection" in joined.lower() or "socket" in joined.lower():
            failures.append(DeliveryError(f"{label}: connection failed{detail}"))
        else:
            failures.append(
                DeliveryError(f"{label}: failed{detail or ' (Apprise gave no reason)'}")
            )
    if not failures:
        return None
    if len(failures) == 1:
        return failures[0]
    return DeliveryError(
        "; ".join(f.message for f in failures), retryable=any(f.retryable for f in failures)
    )


class AppriseChannel:
    """Sends each alert to every Apprise service of its config, concurrently.

    Apprise's own retries, waits between retries and pacing sleeps are turned
    off on every service (``retry = 0``, ``wait = 0``, ``request_rate_per_sec
    = 0``): pixalert's retry schedule, backoff and concurrency limit are the
    only ones in effect. ``timeout`` becomes Apprise's ``service_timeout``.
    When some services fail, the channel remembers (per alert id, for the last
    1024 alerts) which ones accepted the alert or failed for good, and the
    retry of that alert goes only to the others.
    """

    def __init__(self, name: str, config: AppriseConfig, *, state_size: int = STATE_SIZE) -> None:
        self.name = name
        self.config = config
        apprise = _apprise()
        self._timeout = float(config.timeout)
        self._asset = apprise.AppriseAsset(
            service_timeout=self._timeout,
            default_service_retry=0,
            default_service_wait=0.0,
        )
        urls = [u.get().strip() for u in config.urls]
        services = config.services(self._asset)
        targets: list[_Target] = []
        for index, service in enumerate(services):
            _tame(service)
            scheme = _scheme(service, urls[index] if index < len(urls) else None)
            notifier = apprise.Apprise(asset=self._asset)
            notifier.add(service)
            targets.append(_Target(index, "", scheme, _format_of(service), notifier))
        for target in targets:
            target.label = (
                f"apprise ({target.scheme})"
                if len(targets) == 1
                else f"apprise service {target.index + 1} ({target.scheme})"
            )
        self._targets = targets
        self._progress: OrderedDict[str, dict[int, str | None]] = OrderedDict()
        self._state_size = max(1, state_size)
        self._closed = False

    @property
    def schemes(self) -> list[str]:
        """The scheme of each service, in order (``["discord", "mailto"]``): never a URL."""
        return [t.scheme for t in self._targets]

    def describe(self) -> str:
        """One line for ``pixalert channels``: how many services, by scheme only."""
        counts = Counter(self.schemes)
        shown = ", ".join(
            f"{scheme} ({n})" if n > 1 else scheme for scheme, n in sorted(counts.items())
        )
        count = len(self._targets)
        return f"{count} Apprise service{'s' if count != 1 else ''}: {shown}"

    def __repr__(self) -> str:
        return f"AppriseChannel(name={self.name!r}, services={self.schemes!r})"

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

    async def send(self, alert: Alert, *, previous: Receipt | None = None) -> Receipt | None:
        """Notify every service that has not accepted ``alert`` yet.

        Returns ``{"services": "discord, mailto", "targets": "2"}``. Raises
        :class:`pixalert.DeliveryError` naming failed services by number and
        scheme (never by URL); retryable when any failure may pass on retry.
        """
        if self._closed:
            raise DeliveryError(f"channel {self.name}: closed", retryable=False)
        _logs.install()  # loggers a service created since the last send
        done = self._progress_for(alert.id)
        pending = [t for t in self._targets if t.index not in done]
        retryable: dict[int, DeliveryError] = {}
        if pending:
            title, kind, bodies = self._notification(alert, pending)
            if len(pending) == 1:
                outcomes = [await self._deliver(pending[0], title, bodies, kind, done)]
            else:
                outcomes = list(
                    await asyncio.gather(
                        *(self._deliver(t, title, bodies, kind, done) for t in pending)
                    )
                )
            for target, error in zip(pending, outcomes, strict=True):
                if error is not None and error.retryable:
                    retryable[target.index] = error
        failed = {i: msg for i, msg in done.items() if msg is not None}
        failed.update({i: err.message for i, err in retryable.items()})
        if not failed:
            return {
                "services": ", ".join(self.schemes),
                "targets": str(len(self._targets)),
            }
        raise self._combine(failed, retryable)

    @staticmethod
    def _notification(alert: Alert, targets: Sequence[_Target]) -> tuple[str, str, dict[str, str]]:
        """The title, notify type and body (per body format of ``targets``) of ``alert``."""
        bodies = {fmt: render_body(alert, fmt) for fmt in {t.body_format for t in targets}}
        return render_title(alert), notify_type(alert), bodies

    def render(self, alert: Alert) -> Preview:
        """What :meth:`send` would hand Apprise for ``alert``: the ``title``, the
        ``notify_type`` and, per service (by scheme: never a URL), its
        ``body_format`` and ``body``; the sketch is the plain-text form. Sends nothing."""
        title, kind, bodies = self._notification(alert, self._targets)
        services = [
            {
                "service": t.index + 1,
                "scheme": t.scheme,
                "body_format": t.body_format,
                "body": bodies[t.body_format],
            }
            for t in self._targets
        ]
        content = {"title": title, "notify_type": kind, "services": services}
        return Preview("apprise", content, f"{title}\n\n{render_body(alert, 'text')}")

    def _combine(
        self, failed: dict[int, str], retryable: dict[int, DeliveryError]
    ) -> DeliveryError:
        reasons = [failed[i] for i in sorted(failed)]
        total = len(self._targets)
        if total == 1:
            message = reasons[0]
        else:
            accepted = total - len(failed)
            message = f"apprise: {accepted} of {total} services accepted; " + "; ".join(reasons)
        return DeliveryError(message, retryable=bool(retryable))

    async def _deliver(
        self,
        target: _Target,
        title: str,
        bodies: dict[str, str],
        kind: str,
        done: dict[int, str | None],
    ) -> DeliveryError | None:
        """One attempt at one service; records the outcome in ``done`` once it is known."""
        error: DeliveryError | None
        try:
            result = await target.notifier.async_notify(
                body=bodies[target.body_format],
                title=title,
                notify_type=kind,
                body_format=target.body_format,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = DeliveryError(f"{target.label}: Apprise raised {type(exc).__name__}")
        else:
            try:
                error = classify(result, target.label, self._timeout)
            finally:
                result.close()
        if error is None:
            done[target.index] = None
            if log.isEnabledFor(logging.DEBUG):
                log.debug("channel %s: %s accepted", self.name, target.label)
            return None
        if not error.retryable:
            done[target.index] = error.message
        log.debug("channel %s: %s", self.name, error.message)
        return error

    async def aclose(self) -> None:
        """Drop the Apprise objects (safe to call twice).

        Apprise opens a connection per request and closes it, so nothing stays open.
        """
        self._closed = True
        for target in self._targets:
            target.notifier.clear()
