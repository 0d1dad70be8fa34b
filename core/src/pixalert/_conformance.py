"""The channel conformance suite: what every channel promises the core, checked.

A channel plugin runs it from its own tests, against its own local test
server, in a few lines. Subclass :class:`ChannelContract` (pytest collects
one test per check)::

    from pixalert.testing import ChannelContract
    from pixalert_pagerduty import channel_spec
    from pixalert_pagerduty.testing import PagerDutyServer


    class TestPagerDutyContract(ChannelContract):
        spec = channel_spec()

        def server(self):  # an async context manager, entered for each check
            return PagerDutyServer()

        def make_config(self, server):  # a working config section for that server
            return server.config()

        def unreachable_config(self, server):  # the same, pointing where nothing listens
            return server.config(events_url=server.refused_url(server.events_url))

When the server is a :class:`pixalert.testing.FakeService`, the suite makes
it fail with its verbs (``provoke(server, kind)``: ``server.fail(**server.failures[kind])``,
and ``server.hang()`` for ``"timeout"``) and counts what it accepted
(``delivered(server)``: ``len(server.received)``). For any other server,
override :meth:`ChannelContract.provoke` and :meth:`ChannelContract.delivered`.

Or call :func:`check_channel_contract` from an async test::

    async def test_contract():
        async with PagerDutyServer() as pd:
            await check_channel_contract(channel_spec(), pd.config(), service=pd)

The checks (names as in :data:`CHECKS`):

``sends``
    The channel is built from the config through ``spec.factory``, has the
    ``name`` it was given, sends a firing alert and then its resolve (with the
    receipt as ``previous``), and returns ``None`` or a receipt of short
    strings. With ``delivered``, the server counted exactly one more message
    after the first send (the resolve may update that message instead).
``permanent``, ``retryable``, ``rate_limited``
    After ``provoke(kind)``, ``send`` raises :class:`pixalert.DeliveryError`
    (nothing else) with ``retryable`` False for a permanent failure (a 4xx, bad
    credentials) and True for a temporary one (a 5xx); a rate limit (429 with
    ``Retry-After``) is retryable with ``retry_after`` set. The channel sends
    again afterwards.
``timeout``
    After ``provoke("timeout")`` the service never answers: a send
    cancelled by the core's timeout (``asyncio.wait_for``) leaves the channel
    usable, and ``aclose`` still works. Raising a retryable ``DeliveryError``
    on its own timeout is fine too.
``unreachable``
    With ``unreachable_config`` (a config pointing where nothing listens),
    ``send`` raises a retryable ``DeliveryError``.
``secrets``
    No configured secret (every :class:`pixalert.channels.Secret` value in the config,
    the path and query of secret URLs, and ``secrets`` you add) appears in
    ``repr``/``str`` of the config or the channel. Every check also searches
    each error it sees (message, ``repr``, the exception chain as a traceback
    shows it) and every log record emitted while it runs.
``aclose``
    ``aclose()`` works on an unused channel and on a used one, twice in a row,
    and leaves no unclosed connection behind (no ``ResourceWarning``).
``config_errors``
    The good config structures; an unknown key, a wrong type for each
    number/bool field and a missing required field each raise
    :class:`pixalert.ConfigError` whose lines name the key path
    (``channels.<name>.<key>``); each of ``bad_configs`` (``{"what the error
    must mention": {overrides}}``) does too; a rejected secret value is not
    echoed; validators raise ``ValueError``, not other exceptions.
``render``
    If the channel has ``render(alert)``: it returns a
    :class:`pixalert.channels.Preview` of a firing alert and of its resolve,
    sends nothing (with ``delivered``, the server saw no message), and shows
    no configured secret (in ``content``, ``sketch`` or ``raw``). A channel
    without it passes (previews show the generic one).
``manager``
    Through a real :class:`pixalert.NotificationManager` (with
    :func:`pixalert.testing.make_manager`): the alert is ``sent``; a permanent
    failure is ``failed`` after one attempt; a retryable one is retried and
    sent on the second attempt; results and history carry no secret.

``provoke`` may return an awaitable; returning ``False`` (or raising
``NotImplementedError``) for a kind skips that check with a reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import inspect
import json
import logging
import traceback
import typing
import unittest
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any, ClassVar

import attrs

from ._channels import Channel, ChannelSpec
from ._errors import DeliveryError
from ._fakeservice import FakeService
from ._types import Alert, Priority, Secret
from .hookspecs import hookimpl

__all__ = [
    "CHECKS",
    "ChannelContract",
    "CheckResult",
    "ContractReport",
    "ContractViolation",
    "FailureKind",
    "check_channel_contract",
]

#: Every check, in the order they run.
CHECKS = (
    "sends",
    "permanent",
    "retryable",
    "rate_limited",
    "timeout",
    "unreachable",
    "secrets",
    "aclose",
    "config_errors",
    "render",
    "manager",
)

#: The kinds of failure ``provoke`` is asked to arrange.
FailureKind = typing.Literal["permanent", "retryable", "rate_limited", "timeout"]

# Loggers of the test servers themselves: what a server logs is not the channel's doing.
_SERVER_LOGGERS = ("aiohttp.access", "aiohttp.server", "aiohttp.web", "mail.log", "aiosmtpd")
# How long one send or close may take before the suite calls it stuck.
_GUARD = 30.0
_MIN_SECRET = 4


class ContractViolation(AssertionError):
    """A channel broke its contract. ``problems`` holds one line per broken rule."""

    def __init__(self, check: str, problems: Iterable[str]) -> None:
        self.check = check
        self.problems = list(problems)
        super().__init__(f"{check}: " + "; ".join(self.problems))


class _Skip(Exception):
    """A check cannot run for this channel (the reason says why)."""


@attrs.frozen
class CheckResult:
    """The outcome of one check: ``passed``, ``failed`` or ``skipped``, with details."""

    name: str
    outcome: str
    detail: str = ""


@attrs.frozen
class ContractReport:
    """Every check's :class:`CheckResult`, in order."""

    results: tuple[CheckResult, ...]

    @property
    def failed(self) -> list[CheckResult]:
        """The checks the channel failed."""
        return [r for r in self.results if r.outcome == "failed"]

    @property
    def skipped(self) -> list[CheckResult]:
        """The checks that could not run (each with its reason)."""
        return [r for r in self.results if r.outcome == "skipped"]

    @property
    def passed(self) -> list[CheckResult]:
        """The checks the channel passed."""
        return [r for r in self.results if r.outcome == "passed"]

    def __str__(self) -> str:
        return "\n".join(
            f"{r.outcome:7} {r.name}" + (f": {r.detail}" if r.detail else "") for r in self.results
        )


# ---------------------------------------------------------------------------
# What the checks work on
# ---------------------------------------------------------------------------


@attrs.define
class _Subject:
    spec: ChannelSpec
    config: Mapping[str, Any]
    name: str
    make_channel: Callable[[str, Any], Channel]
    provoke: Callable[[str], Any] | None
    delivered: Callable[[], int | None] | None
    unreachable_config: Mapping[str, Any] | None
    bad_configs: Mapping[str, Mapping[str, Any]]
    extra_secrets: tuple[str, ...]
    hang_timeout: float
    problems: list[str] = attrs.Factory(list)
    _secrets: list[str] | None = None

    @property
    def path(self) -> str:
        return f"channels.{self.name}"

    def structure(self, data: Mapping[str, Any] | None = None) -> Any:
        from ._config import structure_config
        from ._errors import ConfigError

        try:
            return structure_config(
                self.spec.config_type, self.config if data is None else data, path=self.path
            )
        except ConfigError as exc:
            raise ContractViolation(
                "config", [f"the config given to the suite does not structure: {exc}"]
            ) from None

    def secrets(self) -> list[str]:
        if self._secrets is None:
            found: set[str] = set()
            try:
                config = self.structure()
            except ContractViolation:
                config = None
            if config is not None:
                _collect_secrets(config, found)
            found.update(s for s in self.extra_secrets if len(s) >= _MIN_SECRET)
            self._secrets = sorted(found, key=len, reverse=True)
        return self._secrets

    def build(self, data: Mapping[str, Any] | None = None) -> Channel:
        config = self.structure(data)
        try:
            return self.make_channel(self.name, config)
        except Exception as exc:
            raise ContractViolation(
                "build", [f"spec.factory raised {type(exc).__name__}: {self.scrub(str(exc))}"]
            ) from None

    def scrub(self, text: str) -> str:
        """``text`` with the secrets masked, for the suite's own messages."""
        for secret in self.secrets():
            text = text.replace(secret, "<secret>")
        return text

    def leaks(self, text: str) -> list[str]:
        return [_describe(s) for s in self.secrets() if s in text]

    def check_text(self, where: str, text: str) -> None:
        leaked = self.leaks(text)
        if leaked:
            self.problems.append(f"{where} contains {', '.join(leaked)}")

    def check_error(self, where: str, exc: BaseException) -> None:
        for text in _exception_texts(exc):
            leaked = self.leaks(text)
            if leaked:
                self.problems.append(
                    f"{where} ({type(exc).__name__}) carries {', '.join(leaked)} "
                    "in its message, repr or exception chain (raise it 'from None' and "
                    "keep URLs and tokens out of messages)"
                )
                return

    async def arrange(self, kind: str) -> None:
        if self.provoke is None:
            raise _Skip(f"no provoke given: cannot make the service fail as {kind!r}")
        try:
            result = self.provoke(kind)
            if inspect.isawaitable(result):
                result = await result
        except NotImplementedError:
            raise _Skip(
                f"provoke does not arrange {kind!r} failures (override it to check this)"
            ) from None
        if result is False:
            raise _Skip(f"provoke returned False for {kind!r}: no such failure here")

    def count(self) -> int | None:
        return None if self.delivered is None else self.delivered()

    async def send(
        self, channel: Channel, alert: Alert, previous: Mapping[str, str] | None = None
    ) -> Any:
        try:
            return await asyncio.wait_for(channel.send(alert, previous=previous), _GUARD)
        except asyncio.TimeoutError:
            raise ContractViolation(
                "send", [f"send did not finish within {_GUARD:g}s (is it waiting for nothing?)"]
            ) from None

    async def send_ok(
        self,
        channel: Channel,
        alert: Alert,
        failure: str,
        previous: Mapping[str, str] | None = None,
        problems: list[str] | None = None,
    ) -> tuple[bool, Any]:
        """``(True, receipt)`` if ``send`` succeeds; else ``(False, None)``, with the
        problem ``failure`` followed by the error (in ``problems``, default this
        subject's)."""
        try:
            return True, await self.send(channel, alert, previous)
        except ContractViolation:
            raise
        except Exception as exc:
            self.check_error("the error from send()", exc)
            (self.problems if problems is None else problems).append(
                f"{failure} {type(exc).__name__}: {self.scrub(str(exc))}"
            )
            return False, None

    async def close(self, channel: Channel) -> None:
        try:
            await asyncio.wait_for(channel.aclose(), _GUARD)
        except asyncio.TimeoutError:
            self.problems.append(f"aclose() did not finish within {_GUARD:g}s")
        except Exception as exc:
            self.problems.append(f"aclose() raised {type(exc).__name__}: {self.scrub(str(exc))}")
            self.check_error("the error from aclose()", exc)


def _describe(secret: str) -> str:
    return f"a configured secret ({secret[:3]}…, {len(secret)} characters)"


def _collect_secrets(value: Any, found: set[str], depth: int = 0) -> None:
    if depth > 6:
        return
    if isinstance(value, Secret):
        text = value.get()
        if len(text.strip()) >= _MIN_SECRET:
            found.add(text)
            found.add(text.strip())
            if "://" in text:
                # A URL's path and query are where its secret lives (a Slack webhook).
                rest = text.split("://", 1)[1]
                _, sep, tail = rest.partition("/")
                if sep and len(tail) >= 8:
                    found.add("/" + tail)
    elif attrs.has(type(value)):
        for field in attrs.fields(type(value)):
            _collect_secrets(getattr(value, field.name, None), found, depth + 1)
    elif isinstance(value, Mapping):
        for item in value.values():
            _collect_secrets(item, found, depth + 1)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            _collect_secrets(item, found, depth + 1)


def _exception_chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what a traceback shows with it (its cause, or an unsuppressed context)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        if current.__cause__ is not None:
            current = current.__cause__
        elif current.__context__ is not None and not current.__suppress_context__:
            current = current.__context__
        else:
            current = None
    return chain


def _exception_texts(exc: BaseException) -> list[str]:
    texts = ["".join(traceback.format_exception(type(exc), exc, exc.__traceback__))]
    for item in _exception_chain(exc):
        texts.append(str(item))
        texts.append(repr(item))
        texts.append(repr(item.args))
        texts.extend(str(note) for note in getattr(item, "__notes__", ()))
        if isinstance(item, DeliveryError):
            texts.append(item.message)
    return texts


class _LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(_SERVER_LOGGERS):
            return
        try:
            text = record.getMessage()
        except Exception:
            text = str(record.msg)
        if record.exc_info and record.exc_info[1] is not None:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info))
        self.records.append((record.name, text))


@contextlib.contextmanager
def _capture_logs() -> Iterator[_LogCapture]:
    handler = _LogCapture()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _alert(check: str, **kwargs: Any) -> Alert:
    values: dict[str, Any] = {
        "title": f"pixalert contract check: {check}",
        "message": "Zürich db-1: disk 97 % full\nsecond line <b>&amp; é ✓",
        "priority": Priority.CRITICAL,
        "metadata": {"host": "db-1", "disk_used": 0.97, "tags": ["contract", "ü"]},
        "source": "pixalert-contract",
        "key": f"pixalert-contract-{check}-{uuid.uuid4().hex[:12]}",
    }
    values.update(kwargs)
    return Alert(**values)


def _check_receipt(subject: _Subject, receipt: Any, where: str) -> None:
    if receipt is None:
        return
    if not isinstance(receipt, Mapping):
        subject.problems.append(
            f"{where} returned {type(receipt).__name__}; expected None or a mapping of strings"
        )
        return
    for key, value in receipt.items():
        if not isinstance(key, str) or not isinstance(value, str):
            subject.problems.append(
                f"{where} returned a receipt with {key!r}: {type(value).__name__}; "
                "expected string keys and values (the core stores receipts as JSON)"
            )
            return
    subject.check_text(f"the receipt from {where}", json.dumps(dict(receipt)))


# ---------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------


async def _check_sends(s: _Subject) -> str:
    channel = s.build()
    try:
        if getattr(channel, "name", None) != s.name:
            s.problems.append(
                f"channel.name is {getattr(channel, 'name', None)!r}; expected the name it was "
                f"built with, {s.name!r}"
            )
        for method in ("send", "aclose"):
            if not inspect.iscoroutinefunction(getattr(channel, method, None)):
                s.problems.append(f"channel.{method} is not an 'async def' method")
        if s.problems:
            return ""
        alert = _alert("sends")
        before = s.count()
        sent, receipt = await s.send_ok(channel, alert, "send() of a good alert raised")
        if not sent:
            return ""
        _check_receipt(s, receipt, "send()")
        after = s.count()
        if before is not None and after != before + 1:
            s.problems.append(
                f"the server counted {after} messages after one send; expected {before + 1}"
            )
        await s.send_ok(
            channel,
            alert.resolve(),
            "send() of the resolved alert (with previous=<receipt>) raised",
            previous=receipt,
        )
        return f"receipt: {sorted(receipt) if receipt else None}"
    finally:
        await s.close(channel)


async def _expect_failure(s: _Subject, kind: str, *, retryable: bool) -> DeliveryError | None:
    channel = s.build()
    try:
        await s.arrange(kind)
        error: DeliveryError | None = None
        try:
            await s.send(channel, _alert(kind))
        except ContractViolation:
            raise
        except DeliveryError as exc:
            error = exc
            s.check_error(f"the DeliveryError for a {kind} failure", exc)
            if exc.retryable is not retryable:
                s.problems.append(
                    f"a {kind} failure raised DeliveryError(retryable={exc.retryable!r}); "
                    f"expected retryable={retryable}"
                )
            if not exc.message.strip():
                s.problems.append(f"the DeliveryError for a {kind} failure has no message")
        except Exception as exc:
            s.check_error(f"the error for a {kind} failure", exc)
            s.problems.append(
                f"a {kind} failure raised {type(exc).__name__}, not DeliveryError "
                "(the core cannot tell whether to retry it)"
            )
        else:
            s.problems.append(f"send() succeeded although the service failed ({kind})")
        await s.send_ok(
            channel, _alert(f"{kind}-after"), f"after a {kind} failure the channel no longer sends:"
        )
        return error
    finally:
        await s.close(channel)


async def _check_permanent(s: _Subject) -> str:
    error = await _expect_failure(s, "permanent", retryable=False)
    return s.scrub(error.message) if error else ""


async def _check_retryable(s: _Subject) -> str:
    error = await _expect_failure(s, "retryable", retryable=True)
    return s.scrub(error.message) if error else ""


async def _check_rate_limited(s: _Subject) -> str:
    error = await _expect_failure(s, "rate_limited", retryable=True)
    if error is None:
        return ""
    if error.retry_after is None or error.retry_after <= 0:
        s.problems.append(
            f"a rate-limited failure gave retry_after={error.retry_after!r}; expected the "
            "seconds the service asked for (Retry-After)"
        )
    return f"retry_after={error.retry_after!r}"


async def _check_timeout(s: _Subject) -> str:
    channel = s.build()
    outcome = ""
    try:
        await s.arrange("timeout")
        try:
            await asyncio.wait_for(channel.send(_alert("timeout")), s.hang_timeout)
        except asyncio.TimeoutError:
            outcome = f"cancelled after {s.hang_timeout:g}s"
        except DeliveryError as exc:
            s.check_error("the DeliveryError for a timeout", exc)
            outcome = "raised its own timeout error"
            if not exc.retryable:
                s.problems.append(
                    "a timeout raised DeliveryError(retryable=False); a retry may help"
                )
        except Exception as exc:
            s.check_error("the error for a timeout", exc)
            s.problems.append(
                f"a send to a service that never answers raised {type(exc).__name__}, "
                "not DeliveryError or a cancellation"
            )
        else:
            s.problems.append("send() succeeded although the service never answered")
        await s.send_ok(
            channel,
            _alert("timeout-after"),
            "after a cancelled send the channel no longer sends (is send cancellation-safe?):",
        )
        return outcome
    finally:
        await s.close(channel)


async def _check_unreachable(s: _Subject) -> str:
    if s.unreachable_config is None:
        raise _Skip("no unreachable_config given (a config pointing where nothing listens)")
    channel = s.build(s.unreachable_config)
    try:
        try:
            await s.send(channel, _alert("unreachable"))
        except ContractViolation:
            raise
        except DeliveryError as exc:
            s.check_error("the DeliveryError for an unreachable service", exc)
            if not exc.retryable:
                s.problems.append("an unreachable service raised a permanent DeliveryError")
            return s.scrub(exc.message)
        except Exception as exc:
            s.check_error("the error for an unreachable service", exc)
            s.problems.append(
                f"an unreachable service raised {type(exc).__name__}, not DeliveryError"
            )
        else:
            s.problems.append("send() succeeded although nothing listens at unreachable_config")
        return ""
    finally:
        await s.close(channel)


async def _check_secrets(s: _Subject) -> str:
    secrets = s.secrets()
    config = s.structure()
    s.check_text("repr(config)", repr(config))
    s.check_text("str(config)", str(config))
    channel = s.build()
    try:
        s.check_text("repr(channel)", repr(channel))
        s.check_text("str(channel)", str(channel))
    finally:
        await s.close(channel)
    if not secrets:
        return "no secrets configured"
    return f"{len(secrets)} secret strings searched for"


async def _check_render(s: _Subject) -> str:
    from ._channels import Preview

    channel = s.build()
    try:
        render = getattr(channel, "render", None)
        if not callable(render):
            return "no render(): previews show the generic one"
        before = s.count()
        alert = _alert("render")
        for shown in (alert, alert.resolve()):
            try:
                found = render(shown)
                if inspect.isawaitable(found):
                    found = await found
            except Exception as exc:
                s.check_error("the error from render()", exc)
                s.problems.append(f"render() raised {type(exc).__name__}: {s.scrub(str(exc))}")
                continue
            if not isinstance(found, Preview):
                s.problems.append(f"render() returned {type(found).__name__}, not a Preview")
                continue
            s.check_text("render()'s preview", json.dumps(found.to_dict()))
        after = s.count()
        if before is not None and after is not None and after != before:
            s.problems.append(
                f"render() sent something: the server saw {after - before} message(s)"
            )
    finally:
        await s.close(channel)
    return ""


def _closes(s: _Subject, problems: list[str]) -> Awaitable[None]:
    async def run() -> None:
        unused = s.build()
        await s.close(unused)
        await s.close(unused)
        used = s.build()
        await s.send_ok(used, _alert("aclose"), "send() raised", problems=problems)
        await s.close(used)
        await s.close(used)

    return run()


async def _check_aclose(s: _Subject) -> str:
    problems: list[str] = []
    await _closes(s, problems)
    s.problems.extend(problems)
    # Let the transports finish closing, then look for what was left open.
    for _ in range(3):
        await asyncio.sleep(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        gc.collect()
    unclosed = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    if unclosed:
        s.problems.append(
            "after aclose() something was left open: " + s.scrub("; ".join(unclosed[:3]))
        )
    return ""


def _field_types(config_type: type[Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(config_type)
    except Exception:
        return {}


def _bare(tp: Any) -> tuple[Any, bool]:
    """``(inner type, optional)`` for ``X | None``; else ``(tp, False)``."""
    args = typing.get_args(tp)
    if args and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return rest[0], True
    return tp, False


def _is_secret_type(tp: Any) -> bool:
    inner, _ = _bare(tp)
    if inner is Secret:
        return True
    args = typing.get_args(inner)
    return typing.get_origin(inner) in (list, tuple) and bool(args) and args[0] is Secret


async def _check_config_errors(s: _Subject) -> str:
    from ._config import structure_config
    from ._errors import ConfigError

    config_type = s.spec.config_type
    if not attrs.has(config_type):
        s.problems.append(f"config_type {config_type!r} is not an attrs class")
        return ""
    s.structure()
    good = dict(s.config)
    probes: list[tuple[str, dict[str, Any], str | None]] = []
    probes.append(
        ("an unknown key", {**good, "pixalert_contract_unknown": 1}, "pixalert_contract_unknown")
    )
    types = _field_types(config_type)
    for field in attrs.fields(config_type):
        tp, _ = _bare(types.get(field.name))
        if tp is bool:
            probes.append(
                (f"a non-boolean {field.name}", {**good, field.name: "maybe-not"}, field.name)
            )
        elif tp in (int, float):
            probes.append(
                (f"a non-number {field.name}", {**good, field.name: "not-a-number"}, field.name)
            )
        if field.default is attrs.NOTHING and field.name in good and field.init:
            rest = {k: v for k, v in good.items() if k != field.name}
            probes.append((f"a missing {field.name}", rest, field.name))
    for text_wanted, overrides in s.bad_configs.items():
        probes.append((f"bad_configs[{text_wanted!r}]", {**good, **overrides}, text_wanted))
    marker = f"pixalert-contract-{uuid.uuid4().hex}"
    marker_probes = []
    for field in attrs.fields(config_type):
        if _is_secret_type(types.get(field.name)):
            inner, _ = _bare(types.get(field.name))
            bad_value = f"{marker} \n<not valid>"
            value: Any = [bad_value] if typing.get_origin(inner) in (list, tuple) else bad_value
            marker_probes.append((field.name, {**good, field.name: value}))

    checked = 0
    for what, data, mention in probes:
        try:
            structure_config(config_type, data, path=s.path)
        except ConfigError as exc:
            checked += 1
            text = "\n".join(exc.errors)
            s.check_text(f"the ConfigError for {what}", text)
            unclear = [
                line
                for line in exc.errors
                if "unknown error" in line or line.endswith(f"required field missing @ {s.path}")
            ]
            if unclear:
                s.problems.append(
                    f"the ConfigError for {what} is unclear ({s.scrub(unclear[0])}): a validator "
                    "raised something other than ValueError; raise "
                    "ValueError('<key>: expected ...')"
                )
            elif not any(f"@ {s.path}" in line for line in exc.errors):
                s.problems.append(f"the ConfigError for {what} does not name the key path: {text}")
            elif mention and mention not in text:
                s.problems.append(
                    f"the ConfigError for {what} does not mention {mention!r}: {s.scrub(text)}"
                )
        except Exception as exc:
            s.problems.append(
                f"{what}: structuring raised {type(exc).__name__} instead of a ConfigError "
                "(validators and converters must raise ValueError with a clear message)"
            )
        else:
            if mention == "pixalert_contract_unknown" or what.startswith("bad_configs"):
                s.problems.append(f"{what} was accepted; expected a ConfigError")
    for field_name, data in marker_probes:
        try:
            structure_config(config_type, data, path=s.path)
        except ConfigError as exc:
            if any(marker in line for line in exc.errors):
                s.problems.append(
                    f"the ConfigError for a bad {field_name} repeats the secret value it rejected"
                )
        except Exception as exc:
            s.problems.append(
                f"a bad {field_name}: structuring raised {type(exc).__name__} "
                "instead of a ConfigError"
            )
    return f"{checked} bad configs rejected with the key path"


class _SpecPlugin:
    """A plugin object that declares one channel spec (for the manager check)."""

    def __init__(self, spec: ChannelSpec) -> None:
        self.spec = spec

    @hookimpl
    def pixalert_channels(self) -> list[ChannelSpec]:
        return [self.spec]


async def _check_manager(s: _Subject) -> str:
    from .testing import make_manager

    plugin = _SpecPlugin(s.spec)
    section = {**dict(s.config), "type": s.spec.name}
    manager = make_manager(
        config={
            "channels": {s.name: section},
            "delivery": {"max_attempts": 2, "backoff": 0, "timeout": _GUARD},
        },
        plugins=[plugin],
    )
    texts: list[str] = []
    notes: list[str] = []
    async with manager:
        results = await manager.send_alert(
            "pixalert contract check: manager",
            "through the core",
            "critical",
            channels=[s.name],
            source="pixalert-contract",
            cooldown=0,
        )
        result = results[s.name]
        texts.append(json.dumps(result.to_dict()))
        if result.status.value != "sent":
            s.problems.append(
                f"through the manager the alert was {result.status.value}: "
                f"{s.scrub(result.error or '')}"
            )
        for kind, expect_status, expect_attempts in (
            ("permanent", "failed", 1),
            ("retryable", "sent", 2),
        ):
            try:
                await s.arrange(kind)
            except _Skip:
                continue
            results = await manager.send_alert(
                f"pixalert contract check: manager {kind}",
                "through the core",
                "critical",
                channels=[s.name],
                source="pixalert-contract",
                cooldown=0,
            )
            result = results[s.name]
            texts.append(json.dumps(result.to_dict()))
            if result.status.value != expect_status or result.attempts != expect_attempts:
                s.problems.append(
                    f"through the manager a {kind} failure gave {result.status.value} after "
                    f"{result.attempts} attempt(s); expected {expect_status} after "
                    f"{expect_attempts}"
                )
            notes.append(f"{kind}: {result.status.value}/{result.attempts}")
        texts.append(json.dumps(await manager.history(), default=str))
    for text in texts:
        s.check_text("a delivery result or history entry", text)
    return ", ".join(notes)


_RUNNERS: dict[str, Callable[[_Subject], Awaitable[str]]] = {
    "sends": _check_sends,
    "permanent": _check_permanent,
    "retryable": _check_retryable,
    "rate_limited": _check_rate_limited,
    "timeout": _check_timeout,
    "unreachable": _check_unreachable,
    "secrets": _check_secrets,
    "aclose": _check_aclose,
    "config_errors": _check_config_errors,
    "render": _check_render,
    "manager": _check_manager,
}


async def _run_check(subject: _Subject, check: str) -> CheckResult:
    if check not in _RUNNERS:
        raise ValueError(f"unknown check {check!r}: expected one of {', '.join(CHECKS)}")
    subject.problems = []
    with _capture_logs() as logs:
        try:
            detail = await _RUNNERS[check](subject)
        except _Skip as skip:
            return CheckResult(check, "skipped", str(skip))
        except ContractViolation as exc:
            subject.problems.extend(exc.problems)
            detail = ""
    for logger, text in logs.records:
        leaked = subject.leaks(text)
        if leaked:
            subject.problems.append(
                f"a log record of logger {logger!r} contains {', '.join(leaked)}"
            )
            break
    if subject.problems:
        return CheckResult(check, "failed", "; ".join(dict.fromkeys(subject.problems)))
    return CheckResult(check, "passed", detail)


def _subject(
    spec: ChannelSpec,
    config: Mapping[str, Any],
    *,
    name: str | None,
    provoke: Callable[[str], Any] | None,
    delivered: Callable[[], int | None] | None,
    unreachable_config: Mapping[str, Any] | None,
    bad_configs: Mapping[str, Mapping[str, Any]] | None,
    secrets: Iterable[str],
    make_channel: Callable[[str, Any], Channel] | None,
    hang_timeout: float,
) -> _Subject:
    if not isinstance(spec, ChannelSpec):
        raise TypeError(f"spec: expected a ChannelSpec, got {type(spec).__name__}")
    if not isinstance(config, Mapping):
        raise TypeError(
            f"config: expected a mapping (a config section), got {type(config).__name__}"
        )
    return _Subject(
        spec=spec,
        config=dict(config),
        name=name or spec.name,
        make_channel=make_channel or spec.factory,
        provoke=provoke,
        delivered=delivered,
        unreachable_config=unreachable_config,
        bad_configs=dict(bad_configs or {}),
        extra_secrets=tuple(secrets),
        hang_timeout=hang_timeout,
    )


async def check_channel_contract(
    spec: ChannelSpec,
    config: Mapping[str, Any],
    *,
    name: str | None = None,
    service: FakeService[Any] | None = None,
    provoke: Callable[[str], Any] | None = None,
    delivered: Callable[[], int | None] | None = None,
    unreachable_config: Mapping[str, Any] | None = None,
    bad_configs: Mapping[str, Mapping[str, Any]] | None = None,
    secrets: Iterable[str] = (),
    make_channel: Callable[[str, Any], Channel] | None = None,
    hang_timeout: float = 0.5,
    checks: Iterable[str] = CHECKS,
) -> ContractReport:
    """Run the conformance checks against a channel type; raise if it breaks its contract.

    :param spec: the plugin's :class:`pixalert.channels.ChannelSpec`.
    :param config: a working config section (as in TOML) for the local test server.
    :param name: the instance name to build (default ``spec.name``).
    :param service: the local test server, when it is a :class:`pixalert.testing.FakeService`:
        ``provoke`` and ``delivered`` then default to its verbs and its ``received``.
    :param provoke: ``provoke(kind)`` makes the server's next answer fail as
        ``kind`` says (``"permanent"``, ``"retryable"``, ``"rate_limited"``,
        ``"timeout"``); may be async; return ``False`` for a kind it cannot do.
    :param delivered: returns how many messages the server has accepted so far.
    :param unreachable_config: a config section pointing where nothing listens.
    :param bad_configs: ``{"text the error must mention": {key: bad value}}``.
    :param secrets: more strings that must never leak (beyond the config's Secrets).
    :param make_channel: builds a channel from ``(name, config)`` (default ``spec.factory``).
    :param hang_timeout: seconds before a send to a hanging server is cancelled.
    :param checks: which checks to run (default :data:`CHECKS`, all of them).
    :raises ContractViolation: listing every failed check.
    :return: the :class:`ContractReport` (with the skipped checks and why).
    """
    if service is not None:
        if provoke is None:
            provoke = functools.partial(_provoke, service)
        if delivered is None:
            delivered = functools.partial(_count_received, service)
    subject = _subject(
        spec,
        config,
        name=name,
        provoke=provoke,
        delivered=delivered,
        unreachable_config=unreachable_config,
        bad_configs=bad_configs,
        secrets=secrets,
        make_channel=make_channel,
        hang_timeout=hang_timeout,
    )
    results = [await _run_check(subject, check) for check in checks]
    report = ContractReport(tuple(results))
    if report.failed:
        raise ContractViolation(spec.name, [f"[{r.name}] {r.detail}" for r in report.failed])
    return report


def _provoke(service: Any, kind: str) -> None:
    """Make a :class:`pixalert.testing.FakeService` fail its next answer as ``kind`` says.

    ``"timeout"`` is ``service.hang()``; the other kinds are
    ``service.fail(**service.failures[kind])``. A kind the service lists no
    failure for skips the check; a server that is not a FakeService raises
    ``NotImplementedError``.
    """
    if not isinstance(service, FakeService):
        raise NotImplementedError
    if kind == "timeout":
        service.hang()
        return
    arguments = service.failures.get(kind)
    if arguments is None:
        raise _Skip(f"{type(service).__name__}.failures has no {kind!r}: no such failure here")
    service.fail(**arguments)


def _count_received(service: Any) -> int | None:
    """How many messages a :class:`pixalert.testing.FakeService` accepted (None for others)."""
    return len(service.received) if isinstance(service, FakeService) else None


# ---------------------------------------------------------------------------
# The pytest-friendly class
# ---------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _no_server() -> AsyncIterator[None]:
    yield None


class ChannelContract:
    """Subclass it in a test module (``class TestContract(ChannelContract)``) to get one
    test per conformance check (see the module docstring for an example).

    Set :attr:`spec`; override :meth:`make_config`, and :meth:`server`,
    :meth:`provoke`, :meth:`delivered`, :meth:`unreachable_config`,
    :meth:`make_channel` as your service allows. The tests are plain functions
    that run their own event loop: do not mark them ``asyncio``. A check that
    cannot run is skipped with its reason.
    """

    #: The channel type under test.
    spec: ClassVar[ChannelSpec]
    #: The instance name (default: ``spec.name``).
    channel_name: ClassVar[str | None] = None
    #: Strings that must never appear anywhere, beyond the config's Secret values.
    secrets: ClassVar[tuple[str, ...]] = ()
    #: ``{"text the error must mention": {key: bad value}}`` config mistakes to try.
    bad_configs: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    #: Seconds before a send to a hanging server is cancelled.
    hang_timeout: ClassVar[float] = 0.5

    def server(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """An async context manager giving the local test server (default: none)."""
        return _no_server()

    def make_config(self, server: Any) -> Mapping[str, Any]:
        """A working config section for ``server`` (required)."""
        raise NotImplementedError(f"{type(self).__name__}.make_config(server) is required")

    def provoke(self, server: Any, kind: str) -> Any:
        """Make ``server`` fail its next answer as ``kind`` says; return False if it cannot.

        The default works for a :class:`pixalert.testing.FakeService`:
        ``server.hang()`` for ``"timeout"``, else ``server.fail(**server.failures[kind])``
        (the check is skipped when ``failures`` has no such kind). Override it
        for any other server.
        """
        return _provoke(server, kind)

    def delivered(self, server: Any) -> int | None:
        """How many messages ``server`` has accepted (None: not counted).

        The default counts a :class:`pixalert.testing.FakeService`'s ``received``.
        """
        return _count_received(server)

    def unreachable_config(self, server: Any) -> Mapping[str, Any] | None:
        """A config section pointing where nothing listens (None: not checked)."""
        return None

    def make_channel(self, name: str, config: Any) -> Channel:
        """Build the channel (default: ``spec.factory(name, config)``)."""
        return self.spec.factory(name, config)

    def run_check(self, check: str) -> CheckResult:
        """Run one check in a fresh event loop and server; fail or skip the test as it says."""
        result = asyncio.run(self._run(check))
        if result.outcome == "skipped":
            raise unittest.SkipTest(result.detail)
        if result.outcome == "failed":
            raise ContractViolation(check, [result.detail])
        return result

    async def _run(self, check: str) -> CheckResult:
        async with self.server() as server:
            subject = _subject(
                self.spec,
                self.make_config(server),
                name=self.channel_name,
                provoke=lambda kind: self.provoke(server, kind),
                delivered=lambda: self.delivered(server),
                unreachable_config=self.unreachable_config(server),
                bad_configs=self.bad_configs,
                secrets=self.secrets,
                make_channel=self.make_channel,
                hang_timeout=self.hang_timeout,
            )
            return await _run_check(subject, check)

    def test_sends(self) -> None:
        """It sends a firing alert and its resolve; the receipt is strings."""
        self.run_check("sends")

    def test_permanent_failure_is_not_retryable(self) -> None:
        """A permanent failure (4xx, bad credentials) raises DeliveryError(retryable=False)."""
        self.run_check("permanent")

    def test_temporary_failure_is_retryable(self) -> None:
        """A temporary failure (5xx) raises DeliveryError(retryable=True)."""
        self.run_check("retryable")

    def test_rate_limit_carries_retry_after(self) -> None:
        """A rate limit is retryable and carries the Retry-After delay."""
        self.run_check("rate_limited")

    def test_cancelled_send_leaves_channel_usable(self) -> None:
        """A send cancelled by the core's timeout leaves the channel working."""
        self.run_check("timeout")

    def test_unreachable_service_is_retryable(self) -> None:
        """Nothing listening is a retryable DeliveryError."""
        self.run_check("unreachable")

    def test_no_secret_in_reprs_errors_or_logs(self) -> None:
        """No configured secret in repr(config), repr(channel), errors or logs."""
        self.run_check("secrets")

    def test_aclose_is_idempotent_and_clean(self) -> None:
        """aclose() works unused and used, twice, and leaves nothing open."""
        self.run_check("aclose")

    def test_config_errors_name_the_key(self) -> None:
        """Config mistakes raise ConfigError naming channels.<name>.<key>."""
        self.run_check("config_errors")

    def test_render_sends_nothing_and_shows_no_secret(self) -> None:
        """render(), if the channel has it: a Preview, nothing sent, no secret shown."""
        self.run_check("render")

    def test_works_through_the_manager(self) -> None:
        """Through a NotificationManager: sent, not retried when permanent, retried when not."""
        self.run_check("manager")
