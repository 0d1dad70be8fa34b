"""A group of alerts notified together: what a channel's ``send_group`` receives.

A channel with ``async send_group(group, *, previous)`` renders a
:class:`Group` itself (one Slack message, one email digest, one PagerDuty
incident, one webhook body); a channel without it is sent the group's
:meth:`Group.digest`, an ordinary :class:`~pixalert.Alert` listing the
group's alerts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import attrs

from ._types import Alert, Priority

__all__ = ["GROUP_REASONS", "Group", "group_title"]

#: Why a group is notified: its first notification, alerts joined or resolved
#: since the last one, or a reminder while it is still firing.
GROUP_REASONS = ("new", "update", "reminder")

#: How many alerts :meth:`Group.digest` lists before "and N more".
DIGEST_LINES = 20


def _order(alert: Alert) -> tuple[int, int, float]:
    return (int(alert.resolved), -int(alert.priority), alert.created_at.timestamp())


def _sorted(alerts: Sequence[Alert]) -> tuple[Alert, ...]:
    return tuple(sorted(alerts, key=_order))


def _labels(value: Mapping[str, str]) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()}


def _ids(value: Iterable[str]) -> frozenset[str]:
    return frozenset(value)


def group_title(labels: Mapping[str, str]) -> str:
    """The labels that make a group, as text: ``"source=db, env=prod"``."""
    return ", ".join(f"{k}={v}" for k, v in labels.items())


@attrs.frozen
class Group:
    """Alerts that go out as one notification on one channel.

    - ``key``: the group's identity, stable for its life (a channel derives
      its own ids from it: PagerDuty's ``dedup_key``, a webhook's group key);
    - ``labels``: what its alerts share (the ``group_by`` values, or
      Alertmanager's ``groupLabels`` for a group Alertmanager made);
    - ``alerts``: every alert the notification is about, firing ones first,
      each part sorted by priority (highest first), then by time: the alerts
      still firing (told before or not) and those resolved since the last
      notification;
    - ``new``: ids of the alerts not told before;
    - ``reason``: ``"new"`` (the first notification), ``"update"`` (alerts
      joined or resolved) or ``"reminder"`` (``repeat_interval``);
    - ``external_key``: Alertmanager's ``groupKey`` when the group came
      grouped from Alertmanager, else None;
    - ``created_at``: when this notification was made;
    - ``templated``: when a message template applies, the group's digest as
      the template rendered it (an :class:`~pixalert.Alert`: its ``title`` and
      ``message`` in plain text, and the body for the channel's markup in
      :func:`pixalert.channels.rendered_message`); a channel's ``send_group``
      shows that title and body in place of its own heading and alert lines.
      None otherwise.
    """

    key: str
    labels: Mapping[str, str] = attrs.field(factory=dict, converter=_labels)
    alerts: tuple[Alert, ...] = attrs.field(default=(), converter=_sorted)
    new: frozenset[str] = attrs.field(default=frozenset(), converter=_ids)
    reason: str = "new"
    external_key: str | None = None
    created_at: datetime = attrs.field(factory=lambda: datetime.now(timezone.utc))
    templated: Alert | None = attrs.field(default=None, eq=False, repr=False, kw_only=True)

    @property
    def firing(self) -> tuple[Alert, ...]:
        """The alerts still firing, highest priority first."""
        return tuple(a for a in self.alerts if not a.resolved)

    @property
    def resolved(self) -> tuple[Alert, ...]:
        """The alerts resolved since the last notification."""
        return tuple(a for a in self.alerts if a.resolved)

    @property
    def status(self) -> str:
        """``"firing"`` while any alert fires, else ``"resolved"`` (the group is over)."""
        return "firing" if self.firing else "resolved"

    @property
    def priority(self) -> Priority:
        """The highest priority among the firing alerts (among all when none fires)."""
        pool = self.firing or self.alerts
        return max((a.priority for a in pool), default=Priority.LOW)

    @property
    def source(self) -> str:
        """The alerts' common source, or ``"pixalert"`` when they differ."""
        sources = {a.source for a in self.alerts}
        return sources.pop() if len(sources) == 1 else "pixalert"

    def counts(self) -> dict[str, int]:
        """``{"firing": n, "resolved": m}`` and, per priority name, the firing alerts."""
        out = {"firing": len(self.firing), "resolved": len(self.resolved)}
        for level in sorted(Priority, reverse=True):
            n = sum(1 for a in self.firing if a.priority is level)
            if n:
                out[level.name.lower()] = n
        return out

    def title(self) -> str:
        """``"[FIRING:3] source=db"``, ``"[RESOLVED:2] source=db"`` (Alertmanager's style)."""
        what = group_title(self.labels) or (
            self.alerts[0].title if len(self.alerts) == 1 else f"{len(self.alerts)} alerts"
        )
        if self.firing:
            head = f"[FIRING:{len(self.firing)}]"
            if self.resolved:
                head += f" [RESOLVED:{len(self.resolved)}]"
        else:
            head = f"[RESOLVED:{len(self.resolved)}]"
        return f"{head} {what}"

    def summary(self) -> str:
        """One line of counts: ``"3 firing (1 critical, 2 high), 1 resolved"``."""
        counts = self.counts()
        levels = [
            f"{counts[p.name.lower()]} {p.name.lower()}"
            for p in sorted(Priority, reverse=True)
            if p.name.lower() in counts
        ]
        text = f"{counts['firing']} firing"
        if levels:
            text += f" ({', '.join(levels)})"
        if counts["resolved"]:
            text += f", {counts['resolved']} resolved"
        return text

    def line(self, alert: Alert) -> str:
        """One alert as a digest line: ``"[HIGH] Disk full (db) new"``."""
        state = "RESOLVED " if alert.resolved else ""
        title = " ".join(alert.title.split())
        text = f"{state}[{alert.priority.name}] {title}"
        if alert.source and alert.source != self.source:
            text += f" ({alert.source})"
        if alert.id in self.new:
            text += " (new)"
        return text

    def lines(self, limit: int = DIGEST_LINES) -> tuple[list[str], int]:
        """The first ``limit`` alerts as lines, and how many more there are."""
        shown = [self.line(a) for a in self.alerts[:limit]]
        return shown, max(0, len(self.alerts) - limit)

    def digest(self, *, limit: int = DIGEST_LINES) -> Alert:
        """The group as one :class:`Alert` (for a channel without ``send_group``).

        Its ``key`` is ``group:<key>``, its status the group's, its priority
        the highest firing one, its message the counts and one line per alert
        (at most ``limit``, then "and N more"), its metadata the group's
        labels and counts.
        """
        shown, more = self.lines(limit)
        body = [self.summary(), ""] + [f"- {line}" for line in shown]
        if more:
            body.append(f"and {more} more")
        metadata: dict[str, Any] = {
            "group": self.key,
            "group_labels": dict(self.labels),
            "reason": self.reason,
            **self.counts(),
        }
        if self.external_key:
            metadata["group_key"] = self.external_key
        return Alert(
            title=self.title()[:1000],
            message="\n".join(body),
            priority=self.priority,
            metadata=metadata,
            source=self.source,
            key=f"group:{self.key}",
            status="firing" if self.firing else "resolved",
            created_at=self.created_at,
        )
