"""Rows 10 to 12: ``pixalert serve`` end to end, from the Alertmanager POST to the webhook sink.

- ``e2e``: a load generator (its own process) posts Alertmanager bodies of 10
  alerts at a steady rate (open loop: body *i* goes out at ``start + i /
  rate``, whatever the receiver is doing) to a real ``pixalert serve`` (the
  console script, SQLite history, the default store) with one webhook channel
  on a sink in its own process. The sink notes when each alert arrives; the
  latency of an alert is its arrival minus the moment its body's POST began
  (``time.monotonic()``, one clock for every process on Linux). Every alert
  answered 200 must arrive exactly once, or the run fails.
- ``e2e-outage``: the same, with the sink refusing connections (nothing
  listening on its port) for the first part of the run. Every alert must
  still arrive, once; the drain time is from the sink coming up to the last
  alert arriving. pixalert runs with its default delivery settings (3 quick
  attempts, then the timeline's ``retry_schedule`` of 10 s, 30 s, ...).
- ``cluster``: three ``pixalert serve`` on one PostgreSQL schema (history and
  state), bodies spread over them round robin as fast as 10 connections per
  instance take them, against one instance on the same PostgreSQL in the
  same rounds. Aggregate alerts/s is from the first POST to the last alert at
  the sink; the sink counts by alert id and by key, and any alert delivered
  twice fails the run.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import multiprocessing as mp
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import interleave, log, percentile, row
from _sinks import CountMismatch, TimedHTTPSink, free_port
from bench_receiver import ALERTS_PER_BODY, Receiver, alertmanager_body, load

_CTX = mp.get_context("spawn")


def _steady(
    urls: list[str], rate: float, seconds: float, tag: str, start_at: float, out: Any
) -> None:
    """In the load generator: post bodies of 10 alerts at ``rate`` alerts/s for ``seconds``."""
    import aiohttp

    async def main() -> dict[str, Any]:
        bodies = int(rate * seconds / ALERTS_PER_BODY)
        interval = ALERTS_PER_BODY / rate
        payloads = [alertmanager_body(i, tag) for i in range(bodies)]
        sent: dict[str, float] = {}
        statuses: dict[int, int] = {}
        late: list[float] = []
        headers = {"content-type": "application/json"}
        connector = aiohttp.TCPConnector(limit=200)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def post(i: int) -> None:
                t0 = time.monotonic()
                url = urls[i % len(urls)]
                try:
                    async with session.post(url, data=payloads[i], headers=headers) as resp:
                        await resp.read()
                        status = resp.status
                except aiohttp.ClientError:
                    status = 0
                statuses[status] = statuses.get(status, 0) + 1
                if status == 200:
                    for j in range(ALERTS_PER_BODY):
                        sent[f"{tag}{i:08x}{j:02x}"] = t0

            while time.monotonic() < start_at:
                await asyncio.sleep(min(0.05, start_at - time.monotonic()))
            t_start = time.monotonic()
            tasks = []
            for i in range(bodies):
                due = t_start + i * interval
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    late.append(-delay)
                tasks.append(asyncio.ensure_future(post(i)))
            await asyncio.gather(*tasks)
            elapsed = time.monotonic() - t_start
        return {
            "sent": sent,
            "statuses": statuses,
            "elapsed": elapsed,
            "started": t_start,
            "max_late": max(late, default=0.0),
            "bodies": bodies,
        }

    out.put(asyncio.run(main()))


def _fingerprint(key: str) -> str:
    return key.rsplit(":", 1)[-1]


def _wait_for(sink: TimedHTTPSink, expected: int, quiet: float) -> float:
    """Wait until the sink has ``expected`` requests, or nothing arrived for ``quiet`` s;
    return when the count last moved (monotonic)."""
    last, moved = sink.count, time.monotonic()
    while sink.count < expected:
        time.sleep(0.05)
        if sink.count != last:
            last, moved = sink.count, time.monotonic()
        elif time.monotonic() - moved > quiet:
            break
    return moved


def _check(sent: dict[str, float], arrivals: list[tuple[str, str, float]], what: str) -> None:
    """Every alert answered 200 arrived exactly once (by key and by alert id)."""
    by_key = collections.Counter(_fingerprint(k) for k, _, _ in arrivals)
    by_id = collections.Counter(i for _, i, _ in arrivals)
    twice_key = sum(1 for n in by_key.values() if n > 1)
    twice_id = sum(1 for n in by_id.values() if n > 1)
    missing = sum(1 for fp in sent if fp not in by_key)
    stray = sum(1 for fp in by_key if fp not in sent)
    if twice_key or twice_id or missing or stray:
        raise CountMismatch(
            f"{what}: {len(sent)} alerts accepted, {len(arrivals)} requests at the sink: "
            f"{missing} missing, {twice_id} alert ids and {twice_key} keys delivered more "
            f"than once, {stray} not sent by this trial"
        )


def _serve_config(sink_url: str) -> str:
    # Every alert to the one webhook channel (the default routing sends MEDIUM
    # alerts to email and Slack, which are not configured here).
    return (
        f'[channels.hook]\ntype = "webhook"\nurl = "{sink_url}"\n[[routes]]\nchannels = ["hook"]\n'
    )


def _steady_run(urls: list[str], rate: float, seconds: float, tag: str, delay: float) -> Any:
    out = _CTX.Queue()
    proc = _CTX.Process(
        target=_steady,
        args=(urls, rate, seconds, tag, time.monotonic() + delay, out),
        daemon=True,
    )
    proc.start()
    return proc, out


def run_e2e(quick: bool, rounds: int) -> list[dict[str, Any]]:
    """Row 10: latency from the POST to the sink at a steady rate."""
    rate = 300.0 if quick else 1000.0
    seconds = 5.0 if quick else 30.0
    p50s: list[float] = []
    p99s: list[float] = []
    maxes: list[float] = []
    achieved: list[float] = []
    cpu_ms: list[float] = []
    with tempfile.TemporaryDirectory(prefix="pixalert-bench-") as tmp:
        n = 0

        def trial() -> float:
            nonlocal n
            n += 1
            work = Path(tmp) / f"e2e{n}"
            work.mkdir()
            tag = f"{int(time.time()):x}{n:02x}"
            sink = TimedHTTPSink(str(work / "arrivals.json"))
            with sink, Receiver(work, extra=_serve_config(sink.url("hook"))) as rx:
                # Warm-up: one body, delivered, before the timed part.
                load(rx.url, 10**7, 1, 1, tag + "w")
                _wait_for(sink, ALERTS_PER_BODY, 30)
                base = sink.count
                cpu0 = rx.cpu_seconds()
                proc, out = _steady_run([rx.url], rate, seconds, tag, 0.5)
                result = out.get(timeout=seconds + 600)
                proc.join(timeout=30)
                expected = base + len(result["sent"])
                _wait_for(sink, expected, 60)
                cpu = rx.cpu_seconds() - cpu0
            arrivals = [a for a in sink.arrivals if _fingerprint(a[0]).startswith(tag)]
            arrivals = [a for a in arrivals if not _fingerprint(a[0]).startswith(tag + "w")]
            _check(result["sent"], arrivals, "e2e")
            sent = result["sent"]
            lat = [(at - sent[_fingerprint(k)]) * 1000 for k, _, at in arrivals]
            p50s.append(percentile(lat, 50))
            p99s.append(percentile(lat, 99))
            maxes.append(max(lat))
            rate_in = len(sent) / result["elapsed"]
            achieved.append(rate_in)
            cpu_ms.append(cpu * 1000 / len(sent))
            log(
                f"    e2e: {len(sent)} alerts at {rate_in:.0f}/s (generator at most "
                f"{result['max_late'] * 1000:.0f} ms behind), p50 {p50s[-1]:.1f} ms, "
                f"p99 {p99s[-1]:.1f} ms, max {maxes[-1]:.0f} ms; serve CPU {cpu_ms[-1]:.2f} ms "
                f"per alert; statuses {result['statuses']}"
            )
            return p50s[-1]

        samples = interleave({"p50 ms": trial}, rounds, "e2e")
    samples["p99 ms"] = p99s
    samples["max ms"] = maxes
    samples["alerts/s posted"] = achieved
    samples["serve CPU ms/alert"] = cpu_ms
    return [
        row(
            "e2e",
            f"end to end: pixalert serve (SQLite) at {rate:,.0f} alerts/s for {seconds:g} s "
            f"(bodies of {ALERTS_PER_BODY}), POST to webhook sink",
            "",
            samples,
            targets=[{"what": "p99 ms", "op": "<=", "value": 100}],
            rate=rate,
            seconds=seconds,
        )
    ]


#: The outage row's contenders: pixalert's defaults, and a shorter circuit reset.
OUTAGE_SETTINGS = {
    "default settings": "",
    "circuit_reset = 5s": '[delivery]\ncircuit_reset = "5s"\n',
}


def run_e2e_outage(quick: bool, rounds: int) -> list[dict[str, Any]]:
    """Row 11: the sink refuses for the first part; every alert arrives, drain time.

    At most 3 rounds: a trial with the default settings lasts about 80 s."""
    rounds = min(rounds, 3)
    rate = 300.0 if quick else 1000.0
    seconds = 6.0 if quick else 30.0
    down = 3.0 if quick else 10.0
    delivered: dict[str, list[float]] = {name: [] for name in OUTAGE_SETTINGS}
    with tempfile.TemporaryDirectory(prefix="pixalert-bench-") as tmp:
        n = 0

        def trial_of(name: str, settings: str) -> Any:
            def trial() -> float:
                nonlocal n
                n += 1
                work = Path(tmp) / f"out{n}"
                work.mkdir()
                tag = f"{int(time.time()):x}{n:02x}"
                sink = TimedHTTPSink(str(work / "arrivals.json"), port=free_port())
                with Receiver(work, extra=settings + _serve_config(sink.url("hook"))) as rx:
                    proc, out = _steady_run([rx.url], rate, seconds, tag, 0.5)
                    t_start = time.monotonic() + 0.5
                    time.sleep(max(0.0, t_start + down - time.monotonic()))
                    with sink:
                        up_at = time.monotonic()
                        log(f"    {name}: sink up {up_at - t_start:.1f} s after the first POST")
                        result = out.get(timeout=seconds + 600)
                        proc.join(timeout=30)
                        # With the defaults the circuit opens after 5 failures and stays
                        # open 60 s; the retry_schedule steps are 10 s, 30 s, 1 min...
                        _wait_for(sink, len(result["sent"]), 90)
                arrivals = [a for a in sink.arrivals if _fingerprint(a[0]).startswith(tag)]
                _check(result["sent"], arrivals, f"e2e with the sink down ({name})")
                last = max(at for _, _, at in arrivals)
                before_up = [a for a in result["sent"].values() if a < up_at]
                drain = last - up_at
                after = [at - up_at for _, _, at in arrivals]
                steps = collections.Counter(min(int(a // 5) * 5, 120) for a in after)
                delivered[name].append(float(len(arrivals)))
                log(
                    f"    {name}: {len(result['sent'])} alerts accepted ({len(before_up)} while "
                    f"the sink was down), all delivered once; last one {drain:.1f} s after the "
                    f"sink came up, {last - result['started']:.1f} s after the first POST; "
                    "arrivals by 5 s after it came up: "
                    + ", ".join(f"{k}s: {v}" for k, v in sorted(steps.items()))
                )
                return drain

            return trial

        samples = interleave(
            {name: trial_of(name, extra) for name, extra in OUTAGE_SETTINGS.items()},
            rounds,
            "e2e outage",
        )
    for name, counts in delivered.items():
        samples[f"{name}: alerts delivered"] = counts
    return [
        row(
            "e2e-outage",
            f"end to end with the sink refusing for the first {down:g} s of {seconds:g} s at "
            f"{rate:,.0f} alerts/s (SQLite): every alert delivered once; drain time from the "
            "sink coming up to the last alert",
            "s",
            samples,
            units={f"{name}: alerts delivered": "" for name in OUTAGE_SETTINGS},
            rate=rate,
            seconds=seconds,
            down=down,
        )
    ]


def run_cluster(quick: bool, rounds: int) -> list[dict[str, Any]]:
    """Row 12: three pixalert serve on one PostgreSQL against one; no alert sent twice.

    At most 3 rounds (each trial starts its instances and a schema)."""
    rounds = min(rounds, 3)
    from _stores import pg_schema, pg_unreachable

    reason = pg_unreachable()
    if reason:
        log(f"  skipping the cluster row: {reason}")
        return []
    bodies = 60 if quick else 300  # per instance
    inflight = 10
    retried: dict[str, list[float]] = {"1": [], "3": []}
    with tempfile.TemporaryDirectory(prefix="pixalert-bench-") as tmp:
        n = 0

        def trial_of(instances: int) -> Any:
            def trial() -> float:
                nonlocal n
                n += 1
                work = Path(tmp) / f"c{n}"
                work.mkdir()
                tag = f"{int(time.time()):x}{n:02x}"
                total = bodies * instances
                with (
                    TimedHTTPSink(str(work / "arrivals.json")) as sink,
                    pg_schema() as (_, url),
                    contextlib.ExitStack() as stack,
                ):
                    extra = f"state = {json.dumps(url)}\n" + _serve_config(sink.url("hook"))
                    rxs = [
                        stack.enter_context(
                            Receiver(work, history=url, extra=extra, name=f"pixalert{i}")
                        )
                        for i in range(instances)
                    ]
                    for i, rx in enumerate(rxs):  # warm-up: one body each, delivered
                        load(rx.url, 10**7 + i, 1, 1, tag + "w")
                    _wait_for(sink, ALERTS_PER_BODY * instances, 30)
                    base = sink.count
                    started = time.monotonic()
                    results = _spread([rx.url for rx in rxs], total, inflight, tag)
                    accepted = sum(r["statuses"].get(200, 0) for r in results)
                    if accepted != total:
                        said = " | ".join(line for rx in rxs for line in list(rx.output)[-3:])
                        raise CountMismatch(
                            f"cluster: statuses {[r['statuses'] for r in results]}; "
                            f"the instances said: {said}"
                        )
                    _wait_for(sink, base + total * ALERTS_PER_BODY, 60)
                    retried[f"{instances}"].append(sum(r["retried"] for r in results))
                arrivals = [
                    a
                    for a in sink.arrivals
                    if _fingerprint(a[0]).startswith(tag)
                    and not _fingerprint(a[0]).startswith(tag + "w")
                ]
                per_body = range(ALERTS_PER_BODY)
                sent = {f"{tag}{i:08x}{j:02x}": 0.0 for i in range(total) for j in per_body}
                _check(sent, arrivals, f"cluster of {instances}")
                last = max(at for _, _, at in arrivals)
                return len(arrivals) / (last - started)

            return trial

        samples = interleave(
            {"3 instances": trial_of(3), "1 instance": trial_of(1)}, rounds, "cluster"
        )
    # Bodies answered 503 (overloaded, or storing timed out) and posted again, as
    # Alertmanager would; the dedup marks keep a body stored before its 503 from
    # being stored twice, and the sink check catches it if they do not.
    samples["3 instances: bodies retried after a 503"] = retried["3"]
    samples["1 instance: bodies retried after a 503"] = retried["1"]
    return [
        row(
            "cluster",
            f"pixalert serve on one PostgreSQL: bodies of {ALERTS_PER_BODY} alerts, "
            f"{inflight} connections per instance, POST to webhook sink, none delivered twice",
            "alerts/s",
            samples,
            pairs=[("3 instances", "1 instance")],
            targets=[{"what": "1 instance", "op": ">=", "value": 3000}],
            bodies_per_instance=bodies,
            show=[
                "3 instances: bodies retried after a 503",
                "1 instance: bodies retried after a 503",
            ],
            units={
                "3 instances: bodies retried after a 503": "",
                "1 instance: bodies retried after a 503": "",
            },
            inflight=inflight,
        )
    ]


def _spread(urls: list[str], total: int, inflight: int, tag: str) -> list[dict[str, Any]]:
    """Post ``total`` bodies, spread round robin over ``urls``, from one process per URL."""
    outs = []
    procs = []
    share = total // len(urls)
    for i, url in enumerate(urls):
        from bench_receiver import _load

        out = _CTX.Queue()
        proc = _CTX.Process(
            target=_load, args=(url, i * share, share, inflight, tag, out, True), daemon=True
        )
        proc.start()
        outs.append(out)
        procs.append(proc)
    results = [out.get(timeout=600) for out in outs]
    for proc in procs:
        proc.join(timeout=30)
    return results
