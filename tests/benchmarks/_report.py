"""The markdown table of a run, and writing it into docs/performance.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

START = "<!-- results:start (written by tests/benchmarks/run.py --write-docs) -->"
END = "<!-- results:end -->"
X = "\u00d7"  # multiplication sign
DASH = "\u2013"  # en dash


def num(value: float) -> str:
    """A readable number: thousands separators from 100 up, three significant digits below."""
    if value != value:  # NaN
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _target(targets: list[dict[str, Any]], what: str) -> tuple[str, str]:
    for t in targets:
        if t["what"] == what:
            op = "≥" if t["op"] == ">=" else "≤"
            if t.get("informational"):
                return f"({op} {num(t['value'])})", "(info)"
            return f"{op} {num(t['value'])}", "yes" if t["met"] else "**no**"
    return "", ""


def _value(stats: dict[str, Any], name: str, unit: str) -> str:
    st = stats[name]
    return f"{name}: {num(st['median'])} {unit}".rstrip()


def _pair(name: str, stats: dict[str, Any]) -> tuple[str, str]:
    """The two contenders of the ratio ``name`` ("a/b"; either may hold a "/" itself)."""
    for i, ch in enumerate(name):
        if ch == "/" and name[:i] in stats and name[i + 1 :] in stats:
            return name[:i], name[i + 1 :]
    mine, other = name.split("/", 1)
    return mine, other


def markdown(result: dict[str, Any]) -> str:
    """The results table: one line per ratio, and one per measured value with a target."""
    lines = [
        "| benchmark | pixalert (median, ±half range) | compared with (median) "
        "| ratio: median (range over rounds) | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        unit = r["unit"]
        stats = r["contenders"]
        units = r.get("units", {})
        first = True
        for name, ratio in r["ratios"].items():
            mine, other = _pair(name, stats)
            target, met = _target(r["targets"], name)
            spread = stats[mine]["spread"] / 2
            lines.append(
                f"| {r['name'] if first else ''} "
                f"| {_value(stats, mine, unit)} (±{spread:.0%}) "
                f"| {_value(stats, other, unit)} "
                f"| {ratio['median']:.2f}{X} ({ratio['min']:.2f}{DASH}{ratio['max']:.2f}) "
                f"| {target} | {met} |"
            )
            first = False
        extra = r.get("apprise_as_shipped")
        if extra:
            lines.append(
                f"| | | apprise as shipped (throttled): {num(extra['messages_per_s'])} {unit} "
                f"| {extra['pixalert/apprise_as_shipped']:,.0f}{X} (one measurement) | | |"
            )
        if r["ratios"]:
            # Contenders with a target of their own (not a ratio) still get a line.
            named = [t["what"] for t in r["targets"] if t["what"] in stats]
            named += [n for n in r.get("show", []) if n in stats and n not in named]
        else:
            named = list(stats)
        for name in named:
            st = stats[name]
            target, met = _target(r["targets"], name)
            u = units.get(name, unit)
            lines.append(
                f"| {r['name'] if first else ''} | {name}: {num(st['median'])} {u} "
                f"({num(st['min'])}{DASH}{num(st['max'])}) | | | {target} | {met} |"
            )
            first = False
    meta = result["machine"]
    pk = result["packages"]
    lines.append("")
    lines.append(
        f"Run of {result['started']} ({result['mode']}, {result['rounds']} interleaved rounds, "
        f"commit {result['commit']}, {result['seconds']:.0f} s): {meta['cpus']} cores "
        f"({meta['cpu_model']}), {meta['memory_gib']} GiB, {meta['os']}, "
        f"Python {meta['python']}; load average {meta['load_average_start'][0]:.1f} at the "
        f"start and {meta['load_average_end'][0]:.1f} at the end (the machine was shared)."
    )
    lines.append("")
    lines.append(
        "Versions: " + ", ".join(f"{name} {version}" for name, version in pk.items() if version)
    )
    if result["errors"]:
        lines.append("")
        lines.append("Errors: " + "; ".join(result["errors"]))
    return "\n".join(lines) + "\n"


def write_docs(path: Path, table: str) -> None:
    """Replace what is between the markers of ``path`` with ``table``."""
    text = path.read_text()
    head, sep, rest = text.partition(START)
    if not sep:
        raise SystemExit(f"{path}: marker {START!r} not found")
    _, sep2, tail = rest.partition(END)
    if not sep2:
        raise SystemExit(f"{path}: marker {END!r} not found")
    path.write_text(head + START + "\n\n" + table + "\n" + END + tail)
