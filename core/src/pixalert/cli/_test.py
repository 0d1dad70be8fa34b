"""``pixalert test``: test suites that run against the configured channels.

- ``channels``: one test message per configured channel.
- ``priorities``: which channels each priority reaches (the routing table), proven by sending.
- ``concurrent``: a burst of alerts at once, with throughput and latency percentiles.
- ``errors``: how each kind of failure is handled (unreachable host, bad
  credentials, rate limit with ``Retry-After``, timeout, server error), against
  a :class:`pixalert.testing.FakeService` this command serves itself on
  127.0.0.1, told to fail on each case's own path.

Test alerts go through the real delivery path (routing, retries, timeouts)
with cooldown off and an in-memory history, so they do not show in
``pixalert history``. Incidents a test opens in a service that tracks them
(PagerDuty) are resolved at once. Exit status 1 if any check failed.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import click

from . import EXIT_DELIVERY_FAILED, build_manager, fail, json_option, run_async
from ._output import Styled, console, escape, fmt_latency, print_json, print_table, status_text

if TYPE_CHECKING:
    from .._fakeservice import FakeService
    from .._manager import NotificationManager
    from .._types import DeliveryResult

__all__ = ["test"]

SUITES = ("channels", "priorities", "concurrent", "errors")
SOURCE = "pixalert-test"
_NOTE = "Sent by 'pixalert test'. No action needed."


@attrs.define
class SuiteResult:
    """What one suite found: rows for the table, a verdict, a summary and notes."""

    name: str
    title: str
    columns: list[str]
    rows: list[dict[str, Any]] = attrs.Factory(list)
    ok: bool = True
    summary: dict[str, Any] = attrs.Factory(dict)
    notes: list[str] = attrs.Factory(list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form for ``--json``."""
        return {"ok": self.ok, "results": self.rows, "summary": self.summary, "notes": self.notes}


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) of ``values``, linearly interpolated; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


async def _resolve_tracked(
    manager: NotificationManager,
    title: str,
    priority: Any,
    key: str,
    results: dict[Any, DeliveryResult],
) -> list[str]:
    """Resolve what a test opened in services that track incidents (those that gave a receipt)."""
    tracked = [str(name) for name, r in results.items() if r and r.receipt]
    if not tracked:
        return []
    await manager.send_alert(
        title,
        "Resolved: this was a test.",
        priority,
        channels=tracked,
        source=SOURCE,
        key=key,
        status="resolved",
        cooldown=0,
    )
    return tracked


def _key(suite: str) -> str:
    return f"pixalert-test-{suite}-{uuid.uuid4().hex[:10]}"


# ---------------------------------------------------------------------------
# channels
# ---------------------------------------------------------------------------


async def suite_channels(manager: NotificationManager, names: list[str]) -> SuiteResult:
    """One test message per channel."""
    result = SuiteResult(
        "channels",
        "Channels: one test message each",
        ["channel", "type", "status", "attempts", "latency", "detail"],
    )
    unavailable = {n: r for n, r in manager.unavailable.items() if n in names}
    for name, reason in unavailable.items():
        result.rows.append(
            {
                "channel": name,
                "type": None,
                "status": "unavailable",
                "attempts": 0,
                "latency": None,
                "detail": reason,
            }
        )
    ready = [n for n in names if n in manager.channels]
    if ready:
        title = "pixalert test: channel check"
        key = _key("channels")
        results = await manager.send_alert(
            title,
            f"A test message for each configured channel. {_NOTE}",
            "low",
            channels=ready,
            source=SOURCE,
            key=key,
            cooldown=0,
        )
        for name, r in results.items():
            result.rows.append(
                {
                    "channel": str(name),
                    "type": manager.channel_types.get(name),
                    "status": r.status.value,
                    "attempts": r.attempts,
                    "latency": r.latency,
                    "detail": r.error,
                }
            )
        resolved = await _resolve_tracked(manager, title, "low", key, results)
        if resolved:
            result.notes.append(
                f"The test alert was resolved again in: {', '.join(resolved)} "
                "(channels that track incidents)."
            )
    if not result.rows:
        result.ok = False
        result.notes.append("No channels configured: run 'pixalert init'.")
    result.ok = result.ok and all(row["status"] == "sent" for row in result.rows)
    result.summary = {
        "sent": sum(row["status"] == "sent" for row in result.rows),
        "channels": len(result.rows),
    }
    return result


# ---------------------------------------------------------------------------
# priorities
# ---------------------------------------------------------------------------


async def suite_priorities(manager: NotificationManager) -> SuiteResult:
    """Show where each priority is routed, and prove it by sending one alert per priority."""
    from .._types import Alert, Priority

    result = SuiteResult(
        "priorities",
        "Priorities: where each one is routed, proven by sending",
        ["priority", "routed to", "reached", "skipped", "failed"],
    )
    for priority in Priority:
        title = f"pixalert test: {priority.name} priority routing"
        routed = [str(n) for n in manager.route(Alert(title=title, priority=priority))]
        key = _key(f"priority-{priority.name.lower()}")
        results = await manager.send_alert(
            title,
            f"Checks that {priority.name} alerts reach the channels routed for them. {_NOTE}",
            priority,
            source=SOURCE,
            key=key,
            cooldown=0,
        )
        by_status: dict[str, list[str]] = {"sent": [], "skipped": [], "failed": []}
        details = []
        for name, r in results.items():
            by_status.setdefault(r.status.value, []).append(str(name))
            if r.status.value == "failed" and r.error:
                details.append(f"{name}: {r.error}")
        await _resolve_tracked(manager, title, priority, key, results)
        row = {
            "priority": priority.name,
            "routed": routed,
            "reached": by_status["sent"],
            "skipped": by_status["skipped"],
            "failed": by_status["failed"],
            "details": details,
        }
        result.rows.append(row)
        if by_status["failed"]:
            result.ok = False
        if not by_status["sent"]:
            result.notes.append(
                f"{priority.name} alerts reach no configured channel "
                f"(routed to: {', '.join(routed) or 'nothing'}); see [routing] in the config."
            )
    if not manager.channels:
        result.ok = False
        result.notes.append("No channels configured: run 'pixalert init'.")
    return result


# ---------------------------------------------------------------------------
# concurrent
# ---------------------------------------------------------------------------


async def suite_concurrent(
    manager: NotificationManager, names: list[str], count: int, *, progress: bool
) -> SuiteResult:
    """Send ``count`` alerts at once to ``names``; report throughput and latency percentiles."""
    result = SuiteResult(
        "concurrent",
        f"Concurrent: {count} alerts at once",
        ["channel", "sent", "failed", "p50", "p95", "p99", "max"],
    )
    targets = [n for n in names if n in manager.channels]
    if not targets:
        result.ok = False
        result.notes.append("No channels configured: run 'pixalert init'.")
        return result
    # One incident key for the whole burst: a service that tracks incidents
    # (PagerDuty) groups the alerts in one incident, resolved once at the end.
    key = _key("burst")
    end_to_end: list[float] = []
    per_channel: dict[str, list[DeliveryResult]] = {name: [] for name in targets}
    tracked: dict[Any, DeliveryResult] = {}

    bar, task = _progress(count, enabled=progress)

    async def one(i: int) -> None:
        title = f"pixalert test: burst alert {i + 1} of {count}"
        started = time.perf_counter()
        results = await manager.send_alert(
            title,
            f"One of {count} alerts sent at once. {_NOTE}",
            "low",
            channels=targets,
            source=SOURCE,
            key=key,
            cooldown=0,
        )
        end_to_end.append(time.perf_counter() - started)
        for name, r in results.items():
            per_channel.setdefault(str(name), []).append(r)
            if r and r.receipt:
                tracked[name] = r
        if bar is not None:
            bar.advance(task)

    started = time.perf_counter()
    try:
        if bar is not None:
            bar.start()
        await asyncio.gather(*(one(i) for i in range(count)))
    finally:
        if bar is not None:
            bar.stop()
    wall = time.perf_counter() - started
    resolved = await _resolve_tracked(manager, "pixalert test: burst", "low", key, tracked)
    if resolved:
        result.notes.append(f"The burst's test incident was resolved in: {', '.join(resolved)}.")

    failed_total = 0
    for name, results in per_channel.items():
        latencies = [r.latency for r in results if r and r.latency is not None]
        failed = sum(1 for r in results if not r)
        failed_total += failed
        errors = sorted({r.error for r in results if not r and r.error})
        result.rows.append(
            {
                "channel": name,
                "sent": len(results) - failed,
                "failed": failed,
                "p50": percentile(latencies, 50),
                "p95": percentile(latencies, 95),
                "p99": percentile(latencies, 99),
                "max": max(latencies, default=None),
                "errors": errors[:3],
            }
        )
    deliveries = count * len(targets)
    result.ok = failed_total == 0
    result.summary = {
        "alerts": count,
        "channels": len(targets),
        "deliveries": deliveries,
        "failed": failed_total,
        "seconds": round(wall, 4),
        "alerts_per_second": round(count / wall, 2) if wall > 0 else None,
        "deliveries_per_second": round(deliveries / wall, 2) if wall > 0 else None,
        "latency_ms": {
            "p50": _ms(percentile(end_to_end, 50)),
            "p95": _ms(percentile(end_to_end, 95)),
            "p99": _ms(percentile(end_to_end, 99)),
            "max": _ms(max(end_to_end, default=None)),
        },
    }
    lat = result.summary["latency_ms"]
    result.notes.append(
        f"{count} alerts x {len(targets)} channel(s) = {deliveries} deliveries in {wall:.2f} s: "
        f"{result.summary['alerts_per_second']} alerts/s, "
        f"{result.summary['deliveries_per_second']} deliveries/s. "
        f"End-to-end latency per alert: p50 {lat['p50']} ms, p95 {lat['p95']} ms, "
        f"p99 {lat['p99']} ms, max {lat['max']} ms."
    )
    return result


def _progress(count: int, *, enabled: bool) -> tuple[Any, Any]:
    if not enabled:
        return None, None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    err = Console(stderr=True)
    if not err.is_terminal:
        return None, None
    bar = Progress(
        TextColumn("sending"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )
    return bar, bar.add_task("burst", total=count)


# ---------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------

#: Seconds the rate-limited endpoint asks to wait.
RETRY_AFTER = 1
#: Per-attempt timeout used by the errors suite.
ATTEMPT_TIMEOUT = 0.5
MAX_ATTEMPTS = 3


@attrs.frozen
class FaultCase:
    """One kind of failure, the path that produces it, and what should happen."""

    key: str
    label: str
    path: str
    expected: str


FAULT_CASES = (
    # First, so that the one-time cost of a first request (imports) is not timed.
    FaultCase("baseline", "reachable endpoint (HTTP 200)", "/ok", "sent at once"),
    FaultCase(
        "unreachable",
        "unreachable host (connection refused)",
        "",
        f"retried ({MAX_ATTEMPTS} attempts), then queued",
    ),
    FaultCase(
        "bad_credentials",
        "bad credentials (HTTP 401)",
        "/unauthorized",
        "failed at once: permanent, not retried",
    ),
    FaultCase(
        "rate_limited",
        f"rate limited (HTTP 429, Retry-After: {RETRY_AFTER})",
        "/rate-limited",
        f"retried after >= {RETRY_AFTER} s, then sent",
    ),
    FaultCase(
        "timeout",
        "timeout (no answer)",
        "/hang",
        f"each attempt cut at {ATTEMPT_TIMEOUT:g} s, retried, then queued",
    ),
    FaultCase(
        "server_error",
        "server error (HTTP 503)",
        "/unavailable",
        f"retried ({MAX_ATTEMPTS} attempts), then queued",
    ),
)


def _arrange(server: FakeService[Any], case: FaultCase) -> None:
    """Script ``server`` to fail as ``case`` says, on that case's own path."""
    if case.key == "bad_credentials":
        body = {"error": "invalid credentials"}
        server.fail(401, body=body, times=MAX_ATTEMPTS, endpoint=case.path)
    elif case.key == "rate_limited":  # once: the retry after Retry-After goes through
        server.fail(
            429, retry_after=RETRY_AFTER, body={"error": "rate_limited"}, endpoint=case.path
        )
    elif case.key == "timeout":
        server.hang(times=MAX_ATTEMPTS, endpoint=case.path)
    elif case.key == "server_error":
        server.fail(503, body={"error": "unavailable"}, times=MAX_ATTEMPTS, endpoint=case.path)


def _webhook_spec() -> Any:
    from .._plugins import default_plugin_manager

    try:
        spec = default_plugin_manager().channel_specs().get("webhook")
    except ValueError:
        return None
    if spec is None:
        return None
    try:
        import aiohttp  # noqa: F401 - the fault server needs it
    except ImportError:
        return None
    return spec


def _simulated_channel(case: FaultCase) -> Any:
    """A local channel that fails as a well-behaved channel would for ``case``."""
    from .._errors import DeliveryError
    from ..testing import RecordingChannel

    failures: dict[str, list[BaseException]] = {
        "baseline": [],
        "unreachable": [DeliveryError("connection failed (simulated)")] * MAX_ATTEMPTS,
        "bad_credentials": [DeliveryError.permanent("HTTP 401 invalid credentials (simulated)")],
        "rate_limited": [DeliveryError("HTTP 429 (simulated)", retry_after=RETRY_AFTER)],
        "timeout": [],
        "server_error": [DeliveryError("HTTP 503 (simulated)")] * MAX_ATTEMPTS,
    }

    class Timed(RecordingChannel):
        def __init__(self) -> None:
            super().__init__(
                f"fault-{case.key}", fail=failures[case.key], hang=case.key == "timeout"
            )
            self.times: list[float] = []

        async def send(self, alert: Any, *, previous: Any = None) -> Any:
            self.times.append(time.monotonic())
            return await super().send(alert, previous=previous)

    return Timed()


async def suite_errors() -> SuiteResult:
    """Provoke each failure kind and show how it is classified and handled."""
    from .._fakeservice import FakeService
    from .._manager import NotificationManager
    from .._plugins import default_plugin_manager, get_plugin_manager

    result = SuiteResult(
        "errors",
        "Errors: how each kind of failure is handled",
        ["failure", "expected", "status", "attempts", "handling", "verdict"],
    )
    delivery = {
        "max_attempts": MAX_ATTEMPTS,
        "timeout": ATTEMPT_TIMEOUT,
        "backoff": 0.05,
        # A Retry-After up to this long is waited for in the attempt loop (a
        # longer one would move the delivery to a later round on the timeline).
        "backoff_max": 2 * RETRY_AFTER,
        "circuit_failures": 100,
        "recover_interval": 0,  # a memory history: what waits for a later round ends with us
    }
    spec = _webhook_spec()
    server: FakeService[Any] | None = None
    simulated: dict[str, Any] = {}
    if spec is not None:
        server = FakeService()
        await server.start()
        channels_config = {
            f"fault-{case.key}": {
                "type": "webhook",
                "urls": [
                    server.refused_url() if case.key == "unreachable" else server.url + case.path
                ],
            }
            for case in FAULT_CASES
        }
        manager = NotificationManager(
            {
                "history": "memory://",
                "state": "memory://",
                "delivery": delivery,
                "channels": channels_config,
            },
            plugin_manager=default_plugin_manager(),
            env={},
            read_files=False,
        )
        result.notes.append(
            f"Fault endpoints served on {server.url}, reached through the "
            "webhook channel type (pixalert-webhook)."
        )
    else:
        simulated = {case.key: _simulated_channel(case) for case in FAULT_CASES}
        manager = NotificationManager(
            {"history": "memory://", "state": "memory://", "delivery": delivery},
            channels=list(simulated.values()),
            plugin_manager=get_plugin_manager(entrypoints=False),
            env={},
            read_files=False,
        )
        result.notes.append(
            "Simulated failures through a local channel (install pixalert-webhook to provoke "
            "them over real HTTP)."
        )
    try:
        async with manager:
            for case in FAULT_CASES:
                name = f"fault-{case.key}"
                if server is not None:
                    _arrange(server, case)
                results = await manager.send_alert(
                    f"pixalert test: {case.label}",
                    f"Provokes a failure on purpose. {_NOTE}",
                    "low",
                    channels=[name],
                    source=SOURCE,
                    key=_key(case.key),
                    cooldown=0,
                )
                r = next(iter(results.values()))
                if server is not None:
                    times = [r.at for r in server.requests_to(case.path)] if case.path else []
                else:
                    times = simulated[case.key].times
                result.rows.append(_judge(case, r, times))
    finally:
        if server is not None:
            await server.stop()
    result.ok = all(row["ok"] for row in result.rows)
    result.summary = {
        "max_attempts": MAX_ATTEMPTS,
        "attempt_timeout": ATTEMPT_TIMEOUT,
        "mode": "http" if server is not None else "simulated",
    }
    return result


def _judge(case: FaultCase, r: DeliveryResult, times: list[float]) -> dict[str, Any]:
    """Compare what happened with what should, and say how it was handled."""
    error = r.error or ""
    permanent = "permanent" in error
    waited = times[1] - times[0] if len(times) >= 2 else None
    if case.key == "baseline":
        ok = r.status.value == "sent" and r.attempts == 1
        handling = "delivered" if ok else "not delivered"
    elif case.key == "bad_credentials":
        ok = r.status.value == "failed" and r.attempts == 1 and permanent
        handling = "permanent: not retried" if permanent else "retried"
    elif case.key == "rate_limited":
        honoured = waited is not None and waited >= RETRY_AFTER - 0.05
        ok = r.status.value == "sent" and r.attempts == 2 and honoured
        handling = (
            f"retried after {waited:.2f} s (Retry-After {RETRY_AFTER} s "
            f"{'honoured' if honoured else 'NOT honoured'})"
            if waited is not None
            else "not retried"
        )
    else:
        # Transient: the quick attempts are used up, and the delivery waits on the
        # timeline for its next round instead of failing for good.
        ok = r.status.value == "retrying" and r.attempts == MAX_ATTEMPTS and not permanent
        handling = "transient: retried" if r.attempts > 1 else "not retried"
        if case.key == "timeout":
            ok = ok and "timed out" in error
    return {
        "failure": case.label,
        "case": case.key,
        "expected": case.expected,
        "status": r.status.value,
        "attempts": r.attempts,
        "requests_seen": len(times),
        "retried": r.attempts > 1,
        "permanent": permanent,
        "waited": None if waited is None else round(waited, 3),
        "handling": handling,
        "detail": error,
        "ok": ok,
    }


# ---------------------------------------------------------------------------
# Output and the command
# ---------------------------------------------------------------------------


def _show(result: SuiteResult) -> None:
    rows: Iterable[Sequence[Any]]
    if result.name == "channels":
        rows = (
            (
                r["channel"],
                r["type"] or "",
                status_text(r["status"]),
                r["attempts"],
                fmt_latency(r["latency"]),
                r["detail"] or "",
            )
            for r in result.rows
        )
    elif result.name == "priorities":
        rows = (
            (
                r["priority"],
                ", ".join(r["routed"]) or "-",
                Styled(f"[green]{escape(', '.join(r['reached']))}[/green]")
                if r["reached"]
                else "-",
                ", ".join(r["skipped"]) or "-",
                Styled(f"[red]{escape(', '.join(r['failed']))}[/red]") if r["failed"] else "-",
            )
            for r in result.rows
        )
    elif result.name == "concurrent":
        rows = (
            (
                r["channel"],
                r["sent"],
                Styled(f"[red]{r['failed']}[/red]") if r["failed"] else 0,
                fmt_latency(r["p50"]),
                fmt_latency(r["p95"]),
                fmt_latency(r["p99"]),
                fmt_latency(r["max"]),
            )
            for r in result.rows
        )
    else:
        rows = (
            (
                r["failure"],
                r["expected"],
                status_text(r["status"]),
                r["attempts"],
                r["handling"],
                Styled("[green]as expected[/green]")
                if r["ok"]
                else Styled(f"[red]unexpected[/red] {escape(str(r['detail']))}"),
            )
            for r in result.rows
        )
    if result.rows:
        print_table(result.title, result.columns, rows)
    out = console()
    for note in result.notes:
        out.print(note, markup=False)
    if result.name == "priorities":
        for row in result.rows:
            for detail in row["details"]:
                out.print(f"{row['priority']}: {detail}", markup=False)
    verdict = "[green]passed[/green]" if result.ok else "[red]FAILED[/red]"
    out.print(f"{result.name}: {verdict}\n")


@click.command("test")
@click.argument("suite", type=click.Choice(("all", *SUITES)), default="all")
@click.option(
    "-c",
    "--channel",
    "only",
    multiple=True,
    help="Test only this configured channel (repeatable; channels and concurrent).",
)
@click.option(
    "--count",
    type=click.IntRange(1, 10_000),
    default=20,
    show_default=True,
    help="How many alerts the concurrent suite sends at once.",
)
@json_option
def test(suite: str, only: tuple[str, ...], count: int, as_json: bool) -> None:
    """Test the configured channels: all | channels | priorities | concurrent | errors.

    Test alerts are really delivered (with cooldown off) but not written to
    the history. Exit status 1 if anything failed.
    """
    suites = SUITES if suite == "all" else (suite,)
    needs_config = any(s != "errors" for s in suites)
    manager = (
        build_manager(config={"history": "memory://", "state": "memory://"})
        if needs_config
        else None
    )
    names: list[str] = []
    if manager is not None:
        known = [str(n) for n in manager.channels] + list(manager.unavailable)
        unknown = [n for n in only if n not in known]
        if unknown:
            fail(f"unknown channel {unknown[0]!r}: configured are {', '.join(known) or 'none'}")
        names = list(only) or known
    progress = not as_json and sys.stderr.isatty()

    async def go() -> list[SuiteResult]:
        out: list[SuiteResult] = []
        if manager is not None:
            async with manager:
                for name in suites:
                    if name == "channels":
                        out.append(await suite_channels(manager, names))
                    elif name == "priorities":
                        out.append(await suite_priorities(manager))
                    elif name == "concurrent":
                        out.append(await suite_concurrent(manager, names, count, progress=progress))
                    if not as_json and out and out[-1].name == name:
                        _show(out[-1])
        if "errors" in suites:
            out.append(await suite_errors())
            if not as_json:
                _show(out[-1])
        return out

    try:
        results = run_async(go())
    except ValueError as exc:
        fail(str(exc))
    ok = all(r.ok for r in results)
    if as_json:
        print_json({"ok": ok, "suites": {r.name: r.to_dict() for r in results}})
    elif len(results) > 1:
        failed = [r.name for r in results if not r.ok]
        click.echo("All suites passed." if ok else f"Failed: {', '.join(failed)}.")
    if not ok:
        sys.exit(EXIT_DELIVERY_FAILED)
