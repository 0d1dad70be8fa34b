"""The channel conformance suite: a good channel passes, each kind of broken channel fails.

The channel under test is a :class:`pixalert.testing.RecordingChannel` behind a
fake service (its "server"): the service holds the token, records what it
accepted and fails its next answers as told. Each broken variant breaks one rule.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pytest
from pixalert import Alert, DeliveryError
from pixalert._conformance import CHECKS, ContractReport
from pixalert.channels import ChannelSpec, Secret
from pixalert.testing import (
    ChannelContract,
    ContractViolation,
    RecordingChannel,
    check_channel_contract,
)


class StubService:
    """Stands in for a remote service: one token, what it accepted, scripted faults."""

    def __init__(self) -> None:
        self.token = "tok-" + secrets.token_hex(12)
        self.received: list[Alert] = []
        self.faults: deque[str] = deque()

    def provoke(self, kind: str) -> None:
        self.faults.append(kind)

    def config(self, **overrides: Any) -> dict[str, Any]:
        return {"token": self.token, **overrides}


def _check_timeout(instance: Any, attribute: Any, value: float) -> None:
    if value <= 0:
        raise ValueError(f"timeout: expected a number > 0, got {value!r}")


@attrs.define
class FakeConfig:
    """A config with one secret, one number, one flag."""

    token: Secret
    timeout: float = attrs.field(default=5.0, validator=_check_timeout)
    verbose: bool = False
    address: str = "service"


class GoodChannel(RecordingChannel):
    """A well-behaved channel: clear, classified, secret-free errors; clean close."""

    def __init__(self, name: str, config: FakeConfig, service: StubService) -> None:
        super().__init__(name)
        self.config = config
        self.service = service

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    async def send(self, alert: Alert, *, previous: Any = None) -> Any:
        if self.config.address != "service":
            raise DeliveryError("fake: connection failed (ConnectError)")
        if self.config.token.get() != self.service.token:
            raise DeliveryError.permanent("fake: HTTP 401 invalid token")
        if self.service.faults:
            kind = self.service.faults.popleft()
            await self.fault(kind)
        await super().send(alert, previous=previous)
        self.service.received.append(alert)
        return {"id": alert.id}

    async def fault(self, kind: str) -> None:
        if kind == "permanent":
            raise DeliveryError.permanent("fake: HTTP 400 invalid payload")
        if kind == "retryable":
            raise DeliveryError("fake: HTTP 503 unavailable")
        if kind == "rate_limited":
            raise DeliveryError("fake: HTTP 429 rate limited", retry_after=7)
        if kind == "timeout":
            await asyncio.Event().wait()


def spec_for(
    service: StubService, channel: type[GoodChannel] = GoodChannel, config: type = FakeConfig
) -> ChannelSpec:
    return ChannelSpec(
        name="fake",
        config_type=config,
        factory=lambda name, cfg: channel(name, cfg, service),
        env={"FAKE_TOKEN": "token"},
    )


async def run_suite(
    channel: type[GoodChannel] = GoodChannel, config: type = FakeConfig, **kwargs: Any
) -> ContractReport:
    service = StubService()
    kwargs.setdefault("provoke", service.provoke)
    kwargs.setdefault("delivered", lambda: len(service.received))
    kwargs.setdefault("hang_timeout", 0.05)
    return await check_channel_contract(
        spec_for(service, channel, config), service.config(), **kwargs
    )


async def failed_checks(
    channel: type[GoodChannel] = GoodChannel, config: type = FakeConfig, **kwargs: Any
) -> dict[str, str]:
    with pytest.raises(ContractViolation) as info:
        await run_suite(channel, config, **kwargs)
    failed = {}
    for line in info.value.problems:
        name, _, detail = line.partition("] ")
        failed[name.lstrip("[")] = detail
    return failed


# ---------------------------------------------------------------------------
# A good channel
# ---------------------------------------------------------------------------


async def test_a_good_channel_passes_every_check():
    report = await run_suite()
    assert [r.name for r in report.passed] == [c for c in CHECKS if c != "unreachable"]
    assert [(r.name, r.detail) for r in report.skipped] == [
        ("unreachable", "no unreachable_config given (a config pointing where nothing listens)")
    ]
    report = await run_suite(unreachable_config=StubService().config(address="nowhere"))
    assert [r.name for r in report.passed] == list(CHECKS)
    assert "passed  sends: receipt: ['id']" in str(report)
    assert "manager: permanent: failed/1, retryable: sent/2" in str(report)


async def test_without_provoke_the_failure_checks_are_skipped_with_a_reason():
    report = await run_suite(provoke=None, checks=["sends", "permanent", "timeout"])
    assert [r.outcome for r in report.results] == ["passed", "skipped", "skipped"]
    assert "no provoke given" in report.skipped[0].detail


async def test_provoke_returning_false_skips_that_kind_only():
    service = StubService()

    def provoke(kind: str) -> bool | None:
        if kind == "rate_limited":
            return False
        service.provoke(kind)
        return None

    report = await check_channel_contract(
        spec_for(service),
        service.config(),
        provoke=provoke,
        checks=["rate_limited", "retryable"],
    )
    assert [r.outcome for r in report.results] == ["skipped", "passed"]
    assert "returned False for 'rate_limited'" in report.results[0].detail


async def test_an_async_provoke_is_awaited():
    service = StubService()

    async def provoke(kind: str) -> None:
        await asyncio.sleep(0)
        service.provoke(kind)

    report = await check_channel_contract(
        spec_for(service), service.config(), provoke=provoke, checks=["permanent"]
    )
    assert report.passed[0].detail == "fake: HTTP 400 invalid payload"


async def test_an_unknown_check_name_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown check 'sendz'"):
        await run_suite(checks=["sendz"])


async def test_a_config_that_does_not_structure_is_reported_as_such():
    service = StubService()
    with pytest.raises(ContractViolation, match="the config given to the suite does not structure"):
        await check_channel_contract(spec_for(service), {"tokn": "x"}, checks=["sends"])


async def test_unreachable_config_is_checked_when_given():
    report = await run_suite(
        unreachable_config=StubService().config(address="nowhere"), checks=["unreachable"]
    )
    assert report.passed[0].detail == "fake: connection failed (ConnectError)"


class UnreachableIsPermanent(GoodChannel):
    async def send(self, alert: Alert, *, previous: Any = None) -> Any:
        if self.config.address != "service":
            raise DeliveryError.permanent("fake: connection failed (ConnectError)")
        return await super().send(alert, previous=previous)


async def test_an_unreachable_service_must_be_retryable():
    failed = await failed_checks(
        UnreachableIsPermanent, unreachable_config={"token": "x" * 8, "address": "nowhere"}
    )
    assert failed["unreachable"] == "an unreachable service raised a permanent DeliveryError"


# ---------------------------------------------------------------------------
# Broken channels: each fails the check it breaks
# ---------------------------------------------------------------------------


class LeaksTokenInMessage(GoodChannel):
    async def fault(self, kind: str) -> None:
        if kind == "permanent":
            raise DeliveryError.permanent(f"fake: HTTP 401 for token {self.config.token.get()}")
        await super().fault(kind)


class LeaksUrlInCause(GoodChannel):
    async def fault(self, kind: str) -> None:
        if kind == "retryable":
            try:
                raise ConnectionError(f"POST https://fake.example/{self.config.token.get()} failed")
            except ConnectionError as exc:
                raise DeliveryError("fake: connection failed") from exc
        await super().fault(kind)


class LeaksUrlInContext(GoodChannel):
    """Raises inside ``except`` without ``from None``: the context shows in tracebacks."""

    async def fault(self, kind: str) -> None:
        if kind == "retryable":
            try:
                raise OSError(f"cannot reach https://fake.example/{self.config.token.get()}")
            except OSError:
                raise DeliveryError("fake: connection failed")  # noqa: B904
        await super().fault(kind)


class SuppressesContext(GoodChannel):
    """Raises ``from None``: the secret-bearing context is not shown, so it passes."""

    async def fault(self, kind: str) -> None:
        if kind == "retryable":
            try:
                raise OSError(f"cannot reach https://fake.example/{self.config.token.get()}")
            except OSError:
                raise DeliveryError("fake: connection failed") from None
        await super().fault(kind)


class LeaksInRepr(GoodChannel):
    def __repr__(self) -> str:
        return f"LeaksInRepr(token={self.config.token.get()!r})"


class LeaksInLog(GoodChannel):
    async def send(self, alert: Alert, *, previous: Any = None) -> Any:
        # A third-party plugin logging under its own name: pixalert does not mask that.
        logging.getLogger("pixalert_fake").debug("posting with token %s", self.config.token.get())
        return await super().send(alert, previous=previous)


class PermanentLooksRetryable(GoodChannel):
    async def fault(self, kind: str) -> None:
        if kind == "permanent":
            raise DeliveryError("fake: HTTP 400 invalid payload")  # retryable by default: wrong
        await super().fault(kind)


class ServerErrorLooksPermanent(GoodChannel):
    async def fault(self, kind: str) -> None:
        if kind == "retryable":
            raise DeliveryError.permanent("fake: HTTP 503 unavailable")
        await super().fault(kind)


class RaisesRawErrors(GoodChannel):
    async def fault(self, kind: str) -> None:
        if kind in ("permanent", "retryable"):
            raise RuntimeError("fake: HTTP error")
        await super().fault(kind)


class ForgetsRetryAfter(GoodChannel):
    async def fault(self, kind: str) -> None:
        if kind == "rate_limited":
            raise DeliveryError("fake: HTTP 429 rate limited")
        await super().fault(kind)


class SwallowsFailures(GoodChannel):
    async def fault(self, kind: str) -> None:
        if kind != "timeout":
            return  # pretends it worked
        await super().fault(kind)


class NotCancellationSafe(GoodChannel):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.busy = False

    async def send(self, alert: Alert, *, previous: Any = None) -> Any:
        if self.busy:
            raise DeliveryError("fake: a send is already under way")
        self.busy = True
        result = await super().send(alert, previous=previous)  # not reset when cancelled
        self.busy = False
        return result


class CloseTwiceFails(GoodChannel):
    async def aclose(self) -> None:
        if self.closed:
            raise RuntimeError("already closed")
        await super().aclose()


class LeavesSocketOpen(GoodChannel):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)


class IgnoresItsName(GoodChannel):
    def __init__(self, name: str, config: FakeConfig, service: StubService) -> None:
        super().__init__("something-else", config, service)


class BadReceipt(GoodChannel):
    async def send(self, alert: Alert, *, previous: Any = None) -> Any:
        await super().send(alert, previous=previous)
        return {"count": 1}


class SendsTwice(GoodChannel):
    async def send(self, alert: Alert, *, previous: Any = None) -> Any:
        await super().send(alert, previous=previous)
        return await super().send(alert, previous=previous)


class CannotResolve(GoodChannel):
    async def send(self, alert: Alert, *, previous: Any = None) -> Any:
        if alert.resolved:
            raise KeyError("previous")
        return await super().send(alert, previous=previous)


@pytest.mark.parametrize(
    ("channel", "check", "says"),
    [
        (LeaksTokenInMessage, "permanent", "carries a configured secret"),
        (LeaksUrlInCause, "retryable", "in its message, repr or exception chain"),
        (LeaksUrlInContext, "retryable", "in its message, repr or exception chain"),
        (LeaksInRepr, "secrets", "repr(channel) contains a configured secret"),
        (
            LeaksInLog,
            "sends",
            "a log record of logger 'pixalert_fake' contains a configured secret",
        ),
        (PermanentLooksRetryable, "permanent", "expected retryable=False"),
        (ServerErrorLooksPermanent, "retryable", "expected retryable=True"),
        (RaisesRawErrors, "permanent", "raised RuntimeError, not DeliveryError"),
        (ForgetsRetryAfter, "rate_limited", "expected the seconds the service asked for"),
        (SwallowsFailures, "permanent", "send() succeeded although the service failed"),
        (NotCancellationSafe, "timeout", "is send cancellation-safe?"),
        (CloseTwiceFails, "aclose", "aclose() raised RuntimeError"),
        (LeavesSocketOpen, "aclose", "after aclose() something was left open: unclosed <socket"),
        (IgnoresItsName, "sends", "channel.name is 'something-else'"),
        (BadReceipt, "sends", "expected string keys and values"),
        (SendsTwice, "sends", "the server counted 2 messages after one send; expected 1"),
        (
            CannotResolve,
            "sends",
            "send() of the resolved alert (with previous=<receipt>) raised KeyError",
        ),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else None,
)
async def test_a_broken_channel_fails_the_check_it_breaks(channel, check, says):
    failed = await failed_checks(channel)
    assert check in failed, failed
    assert says in failed[check]


async def test_a_leak_is_described_without_repeating_the_secret():
    service = StubService()
    with pytest.raises(ContractViolation) as info:
        await check_channel_contract(
            spec_for(service, LeaksTokenInMessage),
            service.config(),
            provoke=service.provoke,
            checks=["permanent"],
        )
    assert service.token not in str(info.value)
    assert f"({service.token[:3]}…, {len(service.token)} characters)" in str(info.value)


async def test_raising_from_none_passes_the_secret_checks():
    report = await run_suite(SuppressesContext, checks=["retryable"])
    assert report.passed[0].name == "retryable"


async def test_the_manager_check_sees_a_wrong_classification_through_the_core():
    failed = await failed_checks(PermanentLooksRetryable)
    assert (
        "a permanent failure gave sent after 2 attempt(s); expected failed after 1"
        in (failed["manager"])
    )


# ---------------------------------------------------------------------------
# Config errors
# ---------------------------------------------------------------------------


@attrs.define
class PlainTextToken:
    """Holds the token as a plain str: its repr shows it."""

    token: str


def _key_error_validator(instance: Any, attribute: Any, value: float) -> None:
    if value <= 0:
        raise KeyError("timeout")


@attrs.define
class KeyErrorValidator:
    token: Secret
    timeout: float = attrs.field(default=5.0, validator=_key_error_validator)


def _attribute_error_validator(instance: Any, attribute: Any, value: float) -> None:
    if value <= 0:
        raise AttributeError("'NoneType' object has no attribute 'seconds'")


@attrs.define
class AttributeErrorValidator:
    token: Secret
    timeout: float = attrs.field(default=5.0, validator=_attribute_error_validator)


def _echoing_validator(instance: Any, attribute: Any, value: Secret) -> None:
    if any(c.isspace() for c in value.get()):
        raise ValueError(f"token: expected no spaces, got {value.get()!r}")


@attrs.define
class EchoesSecret:
    token: Secret = attrs.field(validator=_echoing_validator)


async def test_a_secret_kept_in_a_plain_string_is_found_when_named():
    service = StubService()
    report = await check_channel_contract(
        spec_for(service, config=PlainTextToken), service.config(), checks=["secrets"]
    )
    assert report.passed[0].detail == "no secrets configured"  # a str field is not a Secret
    with pytest.raises(ContractViolation, match=r"repr\(config\) contains a configured secret"):
        await check_channel_contract(
            spec_for(service, config=PlainTextToken),
            service.config(),
            secrets=[service.token],
            checks=["secrets"],
        )


async def test_bad_configs_must_be_rejected_naming_what_is_wrong():
    report = await run_suite(checks=["config_errors"], bad_configs={"timeout": {"timeout": -1}})
    assert report.passed[0].detail == "5 bad configs rejected with the key path"
    failed = await failed_checks(
        checks=["config_errors"], bad_configs={"verbose": {"verbose": True}}
    )
    assert "bad_configs['verbose'] was accepted; expected a ConfigError" in failed["config_errors"]
    failed = await failed_checks(checks=["config_errors"], bad_configs={"colour": {"timeout": -1}})
    assert "does not mention 'colour'" in failed["config_errors"]


@pytest.mark.parametrize("config", [KeyErrorValidator, AttributeErrorValidator])
async def test_a_validator_raising_something_else_than_valueerror_fails(config):
    failed = await failed_checks(
        config=config, checks=["config_errors"], bad_configs={"timeout": {"timeout": 0}}
    )
    assert "a validator raised something other than ValueError" in failed["config_errors"]


async def test_a_config_error_that_repeats_a_rejected_secret_fails():
    failed = await failed_checks(config=EchoesSecret, checks=["config_errors"])
    assert (
        "the ConfigError for a bad token repeats the secret value it rejected"
        in (failed["config_errors"])
    )


async def test_a_config_type_that_is_not_attrs_fails():
    class NotAttrs:
        def __init__(self, token: str) -> None:
            self.token = token

    service = StubService()
    with pytest.raises(ContractViolation, match="is not an attrs class"):
        await check_channel_contract(
            spec_for(service, config=NotAttrs), service.config(), checks=["config_errors"]
        )


# ---------------------------------------------------------------------------
# The class API, as a plugin's test module uses it
# ---------------------------------------------------------------------------


class TestGoodChannelContract(ChannelContract):
    """Collected by pytest: one test per check, all passing."""

    spec = spec_for(StubService())  # replaced per test by make_channel below
    bad_configs: Mapping[str, Mapping[str, Any]] = {"timeout": {"timeout": 0}}

    @asynccontextmanager
    async def _server(self) -> AsyncIterator[StubService]:
        service = StubService()
        type(self).spec = spec_for(service)
        yield service

    def server(self) -> Any:
        return self._server()

    def make_config(self, server: StubService) -> Mapping[str, Any]:
        return server.config()

    def provoke(self, server: StubService, kind: str) -> None:
        server.provoke(kind)

    def delivered(self, server: StubService) -> int:
        return len(server.received)

    def unreachable_config(self, server: StubService) -> Mapping[str, Any]:
        return server.config(address="nowhere")


class BrokenContract(TestGoodChannelContract):
    """Not collected (no Test prefix): its checks are run by hand below."""

    @asynccontextmanager
    async def _server(self) -> AsyncIterator[StubService]:
        service = StubService()
        type(self).spec = spec_for(service, LeaksTokenInMessage)
        yield service


def test_the_class_api_raises_a_violation_for_a_broken_channel():
    with pytest.raises(ContractViolation, match="permanent: the DeliveryError"):
        BrokenContract().run_check("permanent")


def test_the_class_api_skips_what_it_cannot_check():
    import unittest

    class NoFailures(TestGoodChannelContract):
        def provoke(self, server: StubService, kind: str) -> None:
            raise NotImplementedError

    with pytest.raises(unittest.SkipTest, match="does not arrange 'timeout' failures"):
        NoFailures().run_check("timeout")


def test_make_config_is_required():
    class Incomplete(ChannelContract):
        spec = spec_for(StubService())

    with pytest.raises(NotImplementedError, match=r"Incomplete.make_config\(server\) is required"):
        Incomplete().run_check("sends")


# ---------------------------------------------------------------------------
# render
# ---------------------------------------------------------------------------


class RenderingChannel(GoodChannel):
    def render(self, alert: Alert) -> Any:
        from pixalert.channels import Preview

        return Preview("fake", {"body": {"title": alert.title}}, alert.title)


class LeakyRenderChannel(GoodChannel):
    def render(self, alert: Alert) -> Any:
        from pixalert.channels import Preview

        return Preview("fake", {"headers": {"Authorization": self.config.token.get()}})


class SendingRenderChannel(GoodChannel):
    def render(self, alert: Alert) -> Any:
        self.service.received.append(alert)
        return {"title": alert.title}


async def test_a_channel_with_a_good_render_passes():
    report = await run_suite(RenderingChannel, checks=["render"])
    assert [r.name for r in report.passed] == ["render"]


async def test_render_must_not_show_a_secret():
    failed = await failed_checks(LeakyRenderChannel, checks=["render"])
    assert "render()'s preview contains" in failed["render"]


async def test_render_must_send_nothing_and_return_a_preview():
    failed = await failed_checks(SendingRenderChannel, checks=["render"])
    assert "not a Preview" in failed["render"] and "render() sent something" in failed["render"]
