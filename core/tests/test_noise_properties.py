"""Property-based tests (Hypothesis) of time intervals and grouping, on a fake clock."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pixalert import DeliveryStatus
from pixalert._intervals import muted, next_change, parse_time_intervals
from pixalert.channels import Group, Receipt
from pixalert.storage import SUPERSEDED
from pixalert.testing import FakeClock, RecordingChannel, make_manager

# No example database: the suite leaves no .hypothesis folder behind.
settings.register_profile("pixalert-noise", database=None)
settings.load_profile("pixalert-noise")

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]
# 2026: around the DST changes of Europe (03-29, 10-25) and the US (03-08, 11-01)
START = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc).timestamp()
END = dt.datetime(2026, 11, 15, tzinfo=dt.timezone.utc).timestamp()
WEEKDAYS = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"]


@st.composite
def clock_range(draw: Any) -> dict[str, str]:
    start = draw(st.integers(0, 24 * 60 - 15))
    end = draw(st.integers(start + 1, 24 * 60))
    return {
        "start_time": f"{start // 60:02d}:{start % 60:02d}",
        "end_time": f"{end // 60:02d}:{end % 60:02d}",
    }


@st.composite
def interval(draw: Any) -> dict[str, Any]:
    table: dict[str, Any] = {"location": draw(st.sampled_from(ZONES))}
    if draw(st.booleans()):
        table["times"] = draw(st.lists(clock_range(), min_size=1, max_size=3))
    if draw(st.booleans()):
        a, b = sorted(draw(st.lists(st.integers(0, 6), min_size=2, max_size=2)))
        table["weekdays"] = [f"{WEEKDAYS[a]}:{WEEKDAYS[b]}"]
    if draw(st.booleans()):
        day = draw(st.sampled_from(["1:10", "-7:-1", "15", "-1", "10:-10"]))
        table["days_of_month"] = [day]
    if draw(st.booleans()):
        table["months"] = [draw(st.sampled_from(["march:april", "october", "3", "june:august"]))]
    return table


intervals = st.lists(interval(), min_size=1, max_size=3)
# Milliseconds: an instant within half a microsecond of a boundary reads as the next one.
instants = st.integers(int(START) * 1000, int(END) * 1000).map(lambda ms: ms / 1000)


@settings(max_examples=150, deadline=None)
@given(mute=intervals, active=st.one_of(st.just([]), intervals), ts=instants)
def test_next_change_is_the_first_instant_the_state_flips(
    mute: list[dict[str, Any]], active: list[dict[str, Any]], ts: float
) -> None:
    sets = parse_time_intervals({"mute": mute, **({"active": active} if active else {})})
    m, a = [sets["mute"]], ([sets["active"]] if active else [])
    state = muted(ts, m, a)
    change = next_change(ts, m, a)
    if change is None:
        return
    assert change > ts
    assert muted(change, m, a) != state
    assert muted(change - 1, m, a) == state or change - 1 <= ts
    steps = int(min(60, (change - ts) // 60))  # nothing flips in between
    for i in range(1, steps):
        probe = round(ts + (change - ts) * i / steps, 3)
        assert muted(probe, m, a) == state, (probe, change)


def test_dst_nights_in_berlin_end_at_seven_local_time() -> None:
    sets = parse_time_intervals(
        {
            "n": {
                "times": [{"start_time": "00:00", "end_time": "07:00"}],
                "location": "Europe/Berlin",
            }
        }
    )
    for day, utc_hour in ((28, 6), (29, 5), (30, 5)):  # the clocks move on the 29th
        midnight = dt.datetime(2026, 3, day, 23, 30, tzinfo=dt.timezone.utc).timestamp() - 86400
        end = next_change(midnight, [sets["n"]], [])
        assert end == dt.datetime(2026, 3, day, utc_hour, tzinfo=dt.timezone.utc).timestamp()
    autumn = dt.datetime(2026, 10, 24, 23, 30, tzinfo=dt.timezone.utc).timestamp()  # 01:30 CEST
    end = next_change(autumn, [sets["n"]], [])
    assert end == dt.datetime(2026, 10, 25, 6, tzinfo=dt.timezone.utc).timestamp()  # 07:00 CET


class TimedChannel(RecordingChannel):
    """Records the fake time of every send."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__("slack")
        self.clock = clock
        self.times: list[float] = []

    async def send(self, alert: Any, *, previous: Receipt | None = None) -> Receipt | None:
        self.times.append(self.clock.now())
        return await super().send(alert, previous=previous)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    mute=intervals,
    arrivals=st.lists(st.integers(0, 7 * 86400), min_size=1, max_size=8),
    start=instants,
)
def test_no_notification_goes_out_during_a_mute_interval(
    mute: list[dict[str, Any]], arrivals: list[float], start: float
) -> None:
    async def run() -> None:
        clock = FakeClock(start)
        slack = TimedChannel(clock)
        config = {
            "time_intervals": {"quiet": mute},
            "routes": [{"match": {}, "channels": ["slack"], "mute_time_intervals": ["quiet"]}],
            "cooldown_minutes": 0,
        }
        sets = parse_time_intervals({"quiet": mute})
        async with make_manager([slack], clock=clock, config=config, history="memory://") as m:
            now = start
            for i, offset in enumerate(sorted(arrivals)):
                clock.advance(start + offset - now)
                now = start + offset
                await m.send_alert(f"a{i}", "m", "high")
                await m.resume_pending()
            for _ in range(12):  # let holds run out, a step at a time
                jobs = [
                    r
                    for e in await m.history(hours=24 * 400, limit=None)
                    for r in e["results"].values()
                    if r["status"] == "held"
                ]
                if not jobs:
                    break
                due = min(dt.datetime.fromisoformat(r["next_attempt_at"]).timestamp() for r in jobs)
                clock.advance(max(0.0, due - clock.now()))
                await m.resume_pending()
            history = await m.history(hours=24 * 400, limit=None)
        for when in slack.times:
            assert not muted(when, [sets["quiet"]], []), when
        # never dropped: sent, or still held (an interval that mutes for weeks) until later
        assert len(history) == len(arrivals)
        for entry in history:
            result = entry["results"]["slack"]
            assert result["status"] in ("sent", "held"), result
            if result["status"] == "held":
                due = dt.datetime.fromisoformat(result["next_attempt_at"]).timestamp()
                assert due > clock.now() and muted(clock.now(), [sets["quiet"]], [])
        assert len(slack.times) == sum(e["results"]["slack"]["status"] == "sent" for e in history)

    asyncio.run(run())


class GroupChannel(RecordingChannel):
    def __init__(self, clock: FakeClock) -> None:
        super().__init__("slack")
        self.clock = clock
        self.notifications: list[tuple[float, Group]] = []

    async def send_group(self, group: Group, *, previous: Receipt | None = None) -> Receipt:
        self.notifications.append((self.clock.now(), group))
        return {"n": str(len(self.notifications))}


event = st.one_of(
    st.tuples(st.just("fire"), st.sampled_from(["db", "api"]), st.integers(0, 3)),
    st.tuples(st.just("resolve"), st.sampled_from(["db", "api"]), st.integers(0, 3)),
    st.tuples(st.just("wait"), st.integers(1, 400), st.just(0)),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(event, min_size=1, max_size=25), critical=st.booleans())
@example(  # found by Hypothesis: a resolve of an alert that never fired, then a group
    events=[
        ("resolve", "db", 0),
        ("fire", "db", 2),
        ("resolve", "db", 2),
        ("wait", 30, 0),
        ("resolve", "db", 0),
    ],
    critical=False,
)
def test_every_fired_alert_is_in_one_notification_or_resolved_first(
    events: list[tuple[str, Any, int]], critical: bool
) -> None:
    async def run() -> None:
        clock = FakeClock(START)
        slack = GroupChannel(clock)
        config = {
            "grouping": {
                "group_by": ["source"],
                "group_wait": "30s",
                "group_interval": "2m",
                "repeat_interval": "1h",
            },
            "cooldown_minutes": 0,
        }
        async with make_manager([slack], clock=clock, config=config, history="memory://") as m:
            for kind, arg, n in events:
                if kind == "wait":
                    clock.advance(arg)
                else:
                    await m.send_alert(
                        f"{arg}-{n}",
                        "m",
                        "critical" if critical and n == 0 else "high",
                        source=arg,
                        key=f"{arg}-{n}",
                        status="firing" if kind == "fire" else "resolved",
                        channels=["slack"],
                    )
                await m.resume_pending()
            for _ in range(10):
                clock.advance(150)
                await m.resume_pending()
            history = await m.history(hours=240, limit=None)
            receipts = {
                e["id"]: (await m.history_store.results_for(e["id"]))[0].receipt for e in history
            }
        by_number = {str(i + 1): g for i, (_, g) in enumerate(slack.notifications)}
        resolves = {e["key"]: e for e in history if e["status"] == "resolved"}
        new_seen: dict[str, int] = {}
        for _, group in slack.notifications:
            for alert_id in group.new:
                new_seen[alert_id] = new_seen.get(alert_id, 0) + 1
        assert all(n == 1 for n in new_seen.values())  # told as new at most once
        for entry in history:
            result = entry["results"]["slack"]
            if entry["status"] != "firing":
                continue
            status = DeliveryStatus(result["status"])
            assert status in (DeliveryStatus.SENT, DeliveryStatus.SUPPRESSED), result
            if status is DeliveryStatus.SUPPRESSED:
                assert result["error"] == SUPERSEDED and entry["key"] in resolves
                continue
            # sent: told by exactly one notification (its receipt names it), which lists
            # its key (its latest firing), and no earlier notification had it
            receipt = receipts[entry["id"]] or {}
            number = receipt.get("n")
            assert number in by_number, (entry, receipt)
            assert any(a.key == entry["key"] for a in by_number[number].alerts)
            earlier = [by_number[str(i)] for i in range(1, int(number))]
            assert not any(a.id == entry["id"] for g in earlier for a in g.alerts)
        last: dict[str, float] = {}
        for when, group in slack.notifications:  # at most one per group per group_interval
            if group.key in last:
                assert when - last[group.key] >= 120
            last[group.key] = when

    asyncio.run(run())
