"""pixalert watching itself: a channel failing every delivery for a while raises an
alert through the other channels, once, and resolves it when the channel recovers;
and the signed links emails carry."""

from __future__ import annotations

import re

import pytest
from pixalert import ConfigError, DeliveryError
from pixalert.channels import ActionLinks, LinkError
from pixalert.testing import FakeClock, RecordingChannel, make_manager

CONFIG = {
    "routing": {p: ["slack", "email"] for p in ("low", "medium", "high", "critical")},
    "self_watch": {"failing_for": "10m", "priority": "critical"},
    "delivery": {"max_attempts": 1, "retry_schedule": ["1m"]},
}


class Flaky(RecordingChannel):
    """Fails every send while :attr:`down`."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.down = True

    async def send(self, alert, *, previous=None):  # type: ignore[no-untyped-def]
        if self.down:
            self.calls += 1
            raise DeliveryError("HTTP 503 service_unavailable")
        return await super().send(alert, previous=previous)


async def test_a_failing_channel_is_reported_through_the_others_once(clock: FakeClock) -> None:
    slack, email = Flaky("slack"), RecordingChannel("email")
    async with make_manager([slack, email], clock=clock, config=CONFIG) as manager:
        await manager.send_alert("Disk full", "/ is 97% full", "high")
        for _ in range(9):  # retried every minute, failing every time
            clock.advance(60)
            await manager.resume_pending()
        assert [a.title for a in email.sent] == ["Disk full"]
        clock.advance(60)
        await manager.resume_pending()
        titles = [a.title for a in email.sent]
        assert titles == ["Disk full", "Channel slack has failed every delivery for 10 minutes"]
        report = email.sent[1]
        assert report.channels == ("email",) and report.priority.name == "CRITICAL"
        assert report.key == "pixalert:channel-failing:slack"
        assert re.search(r": \d+ failed attempts in a row\.", report.message)
        assert "Last error: HTTP 503 service_unavailable" in report.message
        for _ in range(5):  # still failing: no second report
            clock.advance(60)
            await manager.resume_pending()
        assert len(email.sent) == 2
        slack.down = False
        clock.advance(120)  # the next retry (its due time has jitter)
        await manager.resume_pending()
        assert [a.title for a in slack.sent] == ["Disk full"]
        assert [(a.title, a.status) for a in email.sent[2:]] == [
            ("Channel slack delivers again", "resolved")
        ]
        assert email.sent[2].key == report.key
        clock.advance(3600)
        await manager.resume_pending()
        assert len(email.sent) == 3


async def test_it_is_off_unless_configured(clock: FakeClock) -> None:
    slack, email = Flaky("slack"), RecordingChannel("email")
    config = {k: v for k, v in CONFIG.items() if k != "self_watch"}
    async with make_manager([slack, email], clock=clock, config=config) as manager:
        await manager.send_alert("Disk full", "", "high")
        for _ in range(30):
            clock.advance(60)
            await manager.resume_pending()
        assert [a.title for a in email.sent] == ["Disk full"]


async def test_two_instances_report_it_once(clock: FakeClock) -> None:
    from pixalert._memory import MemoryStateBackend

    shared = MemoryStateBackend(clock)
    pairs = [(Flaky("slack"), RecordingChannel("email")) for _ in range(2)]
    managers = [make_manager(list(p), clock=clock, config=CONFIG, state=shared) for p in pairs]
    try:
        for m in managers:
            await m.send_alert("Disk full", "", "high")
        for _ in range(12):
            clock.advance(60)
            for m in managers:
                await m.resume_pending()
        reports = [a for _, email in pairs for a in email.sent if a.title.startswith("Channel")]
        assert len(reports) == 1
        for slack, _ in pairs:
            slack.down = False
        clock.advance(120)
        for m in managers:
            await m.resume_pending()
        resolves = [a for _, email in pairs for a in email.sent if a.status == "resolved"]
        assert len(resolves) == 1
    finally:
        for m in managers:
            await m.aclose()


def test_a_self_watch_channel_must_be_configured() -> None:
    with pytest.raises(ConfigError, match=r"channel 'sms' is not configured @ self_watch"):
        make_manager(
            [RecordingChannel("email")],
            config={"self_watch": {"failing_for": 60, "channels": ["sms"]}},
        )


# ---------------------------------------------------------------------------
# Signed links
# ---------------------------------------------------------------------------


def links(clock: FakeClock, **extra: object) -> ActionLinks:
    return ActionLinks(
        "https://alerts.example.com/pixalert/",
        secret="s3cret-s3cret-s3cret",
        clock=clock,
        **extra,  # type: ignore[arg-type]
    )


def parts(url: str) -> tuple[str, str, str, str]:
    from urllib.parse import parse_qs, urlsplit

    split = urlsplit(url)
    _, _, action, alert_id = split.path.rsplit("/", 3)
    query = parse_qs(split.query)
    return action, alert_id, query["expires"][0], query["sig"][0]


def test_links_are_signed_and_expire(clock: FakeClock) -> None:
    from pixalert import Alert

    maker = links(clock, link_ttl=3600)
    alert = Alert("Disk full")
    made = maker.links(alert)
    assert made is not None
    assert made.ack.startswith(f"https://alerts.example.com/pixalert/links/ack/{alert.id}?")
    assert made.expires_at.timestamp() == int(clock.now() + 3600)
    maker.verify(*parts(made.ack))
    maker.verify(*parts(made.resolve))
    clock.advance(3601)
    with pytest.raises(LinkError) as caught:
        maker.verify(*parts(made.ack))
    assert caught.value.reason == "expired" and "this link expired at" in str(caught.value)
    assert maker.links(alert.resolve()) is None  # a resolve has nothing to act on


@pytest.mark.parametrize("change", ["action", "alert", "expires", "sig", "truncated", "secret"])
def test_an_altered_link_is_invalid(clock: FakeClock, change: str) -> None:
    from pixalert import Alert

    maker = links(clock)
    made = maker.links(Alert("Disk full"))
    assert made is not None
    action, alert_id, expires, sig = parts(made.ack)
    if change == "action":
        action = "resolve"
    elif change == "alert":
        alert_id = alert_id[:-1] + ("0" if alert_id[-1] != "0" else "1")
    elif change == "expires":
        expires = str(int(expires) + 86400)
    elif change == "sig":
        sig = sig[:-1] + ("A" if sig[-1] != "A" else "B")
    elif change == "truncated":
        sig = sig[:10]
    else:
        maker = ActionLinks("https://x.example.com", secret="another-secret-value", clock=clock)
    with pytest.raises(LinkError) as caught:
        maker.verify(action, alert_id, expires, sig)
    assert caught.value.reason == "invalid"


def test_without_a_secret_there_are_no_links(clock: FakeClock) -> None:
    from pixalert import Alert

    maker = ActionLinks("https://x.example.com", clock=clock)
    assert not maker.signs and maker.links(Alert("t")) is None
    with pytest.raises(LinkError):
        maker.verify("ack", "x", "1", "sig")


def test_the_secret_never_shows(clock: FakeClock) -> None:
    manager = make_manager(
        config={
            "actions": {"public_url": "https://x.example.com", "secret": "s3cret-s3cret-s3cret"}
        }
    )
    assert "s3cret" not in repr(manager.settings) and "s3cret" not in repr(manager.action_links)
