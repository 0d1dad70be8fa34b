"""Shared pieces: interleaved rounds, summary statistics, result rows."""

from __future__ import annotations

import gc
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

Trial = Callable[[], float]


def log(message: str) -> None:
    """Progress on stderr (the results go to the JSON file and the table)."""
    print(message, file=sys.stderr, flush=True)


def summary(samples: list[float]) -> dict[str, Any]:
    """Median, min, max and relative spread ((max - min) / median) of ``samples``."""
    med = statistics.median(samples)
    return {
        "median": med,
        "min": min(samples),
        "max": max(samples),
        "spread": (max(samples) - min(samples)) / med if med else 0.0,
        "samples": samples,
    }


def interleave(trials: Mapping[str, Trial], rounds: int, label: str) -> dict[str, list[float]]:
    """Run each trial once per round, rotating the order every round.

    A slow minute on the shared machine then hits every contender alike, and
    each round gives one ratio per pair measured minutes apart at most.
    """
    names = list(trials)
    out: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        shift = r % len(names)
        order = names[shift:] + names[:shift]
        for name in order:
            gc.collect()
            value = trials[name]()
            out[name].append(value)
        shown = ", ".join(f"{n}={out[n][-1]:.4g}" for n in names)
        log(f"  {label} round {r + 1}/{rounds}: {shown}")
    return out


def ratios(
    samples: Mapping[str, list[float]], pairs: list[tuple[str, str]]
) -> dict[str, dict[str, Any]]:
    """Per-round ratios ``a/b`` of paired samples, summarised."""
    out = {}
    for a, b in pairs:
        per_round = [x / y for x, y in zip(samples[a], samples[b], strict=True) if y]
        out[f"{a}/{b}"] = summary(per_round)
    return out


def row(
    group: str,
    name: str,
    unit: str,
    samples: Mapping[str, list[float]],
    pairs: list[tuple[str, str]] = (),  # type: ignore[assignment]
    targets: list[dict[str, Any]] = (),  # type: ignore[assignment]
    **extra: Any,
) -> dict[str, Any]:
    """One result row: contenders' summaries, their per-round ratios, and targets checked.

    A target is ``{"what": "pixalert/aiohttp", "op": ">=", "value": 0.5}``:
    ``what`` is a ratio name or a contender name (its median).
    """
    rats = ratios(samples, list(pairs))
    stats = {k: summary(v) for k, v in samples.items()}
    checked = []
    for target in targets:
        what = target["what"]
        value = rats[what]["median"] if what in rats else stats[what]["median"]
        op = target["op"]
        met = value >= target["value"] if op == ">=" else value <= target["value"]
        checked.append({**target, "measured": value, "met": met})
    return {
        "group": group,
        "name": name,
        "unit": unit,
        "contenders": stats,
        "ratios": rats,
        "targets": checked,
        **extra,
    }


class Stopwatch:
    """``with Stopwatch() as sw: ...`` then ``sw.elapsed`` in seconds (perf_counter)."""

    def __enter__(self) -> Stopwatch:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.elapsed = time.perf_counter() - self.start


def percentile(values: list[float], q: float) -> float:
    """The ``q`` percentile (0-100) by nearest rank."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]
