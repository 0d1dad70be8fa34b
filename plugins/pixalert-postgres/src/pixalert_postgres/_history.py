"""PostgreSQL history store: alerts, deliveries on the timeline, jobs and events.

Every instance pointing at one schema shares one history and one timeline.
Each write is one statement or one pipelined transaction, whatever the batch
size: ``record_many`` inserts every alert and delivery of a batch with
``INSERT ... SELECT FROM unnest(...)``, ``settle`` writes every outcome with
one ``UPDATE ... FROM unnest(...)``, ``claim_due`` takes due work with one
``SELECT ... FOR UPDATE SKIP LOCKED``. Every write of a holder checks its
claim token in the same statement, so a stale holder's late result is
refused. An alert is *pending* while any of its deliveries waits (pending,
retrying or held; there is no state column to keep in step).

A held delivery with a group (``grp``) is left to its group's job (kind
``group``): ``claim_due`` skips it, ``claim_group`` hands it to the job's
holder. Recording a member puts the job on the timeline in the same statement.

Lease and due times come from the manager's clock: keep the instances' clocks
in sync (NTP), well within the lease. Owner liveness (see
:mod:`pixalert_postgres._owners`) uses the server's own clock only.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Hashable, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from pixalert import Alert, DeliveryResult, Priority, StoreUnavailable
from pixalert.storage import (
    GROUP_JOB,
    NEVER_NOTIFIED,
    ROUTE_LATER,
    SUPERSEDED,
    AlertEvent,
    BaseHistoryStore,
    Claim,
    HistoryEntry,
    HistoryQuery,
    Job,
    JobClaim,
    Planned,
    Recorded,
    Settled,
    build_stats,
    build_stats_by,
    check_outcome,
    check_stats_by,
    hour_key,
    planned,
)

from ._batch import Batcher
from ._database import Database, binary, dt
from ._owners import DEAD_OWNERS, OwnerLocks

__all__ = ["PostgresHistoryStore"]

log = logging.getLogger("pixalert.postgres")

_WAITING = "('pending', 'retrying', 'held')"
_WAITING_STATES = frozenset({"pending", "retrying", "held"})
#: Statuses whose due time a result shows as ``next_attempt_at``.
_DUE_SHOWN = frozenset({"retrying", "held"})
# A claim nobody live holds: no owner, its lease over, or its owner known dead.
_FREE = "({t}.owner IS NULL OR {t}.lease_until <= %(now)s OR {t}.owner IN (SELECT owner FROM dead))"


def _json(value: Any) -> str:
    """Compact JSON that PostgreSQL takes: jsonb refuses NUL, so it becomes U+FFFD."""
    text = json.dumps(value, separators=(",", ":"))
    if "\\u0000" in text:
        text = json.dumps(_scrub(value), separators=(",", ":"))
    return text


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, dict):
        return {_text(str(k)): _scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v) for v in value]
    return value


def _text(value: str) -> str:
    """``value`` as PostgreSQL text holds it: a NUL character becomes U+FFFD."""
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def _maybe(value: str | None) -> str | None:
    return None if value is None else _text(value)


def _token() -> str:
    return uuid.uuid4().hex


# ---------------------------------------------------------------------------
# Recording: one statement per batch
# ---------------------------------------------------------------------------

# The alerts (v) and the deliveries wanted (w) come in as arrays. A resolve
# first supersedes the firing deliveries of its key still waiting on the same
# channels (sup); its own delivery there is then stored suppressed. An alert
# recorded again gets only the channels it lacked, and loses its '*' row. A
# delivery planned held is stored unclaimed, due at its time, its note as the
# error; a held member of a group puts the group's job on the timeline, or
# moves it sooner (jobs_due: its payload and claim untouched). A delivery
# planned final (a channel that is not configured) is stored with that status
# and its note, unclaimed.
_RECORD_HEAD = """
WITH v AS (
    SELECT * FROM unnest(%(a_id)s::text[], %(a_key)s::text[], %(a_created)s::timestamptz[],
                         %(a_status)s::text[], %(a_priority)s::smallint[], %(a_body)s::text[],
                         %(a_source)s::text[], %(a_title)s::text[], %(a_message)s::text[])
        AS v (id, key, created_at, status, priority, body, source, title_fold, message_fold)
),
w AS (
    SELECT * FROM unnest(%(w_ord)s::int[], %(w_alert)s::text[], %(w_channel)s::text[],
                         %(w_key)s::text[], %(w_resolved)s::bool[], %(w_token)s::text[],
                         %(w_created)s::timestamptz[], %(w_held)s::bool[],
                         %(w_due)s::timestamptz[], %(w_grp)s::text[], %(w_note)s::text[],
                         %(w_flush)s::timestamptz[], %(w_final)s::text[])
        AS w (ord, alert_id, channel, key, resolved, token, created_at, held, due, grp, note,
              flush, final)
),
"""

_SUPERSEDE = (
    DEAD_OWNERS.strip()
    + """,
hit AS (
    SELECT d.alert_id, d.channel, w.alert_id AS by_alert
    FROM w JOIN {s}.deliveries d ON d.key = w.key AND d.channel = w.channel
    JOIN {s}.alerts a ON a.id = d.alert_id
    WHERE w.resolved AND d.status IN """
    + _WAITING
    + """ AND a.status = 'firing'
      AND d.alert_id <> w.alert_id AND """
    + _FREE.format(t="d")
    + """
    ORDER BY d.alert_id, d.channel
    FOR UPDATE OF d SKIP LOCKED
),
sup AS (
    UPDATE {s}.deliveries d
    SET status = 'suppressed', error = %(superseded)s, owner = NULL, token = NULL,
        lease_until = NULL, recorded_at = now(), recorded_by = %(owner)s
    FROM hit
    WHERE d.alert_id = hit.alert_id AND d.channel = hit.channel AND d.status IN """
    + _WAITING
    + " AND "
    + _FREE.format(t="d")
    + """
    RETURNING d.alert_id, d.channel, hit.by_alert
),
"""
)

_NO_SUPERSEDE = """
sup AS (SELECT NULL::text AS alert_id, NULL::text AS channel, NULL::text AS by_alert WHERE false),
"""

_RECORD_INSERTS = """
new AS (
    INSERT INTO {s}.alerts (id, key, created_at, status, priority, body, source, title_fold,
                            message_fold, recorded_at)
    SELECT id, key, created_at, status, priority, body::jsonb, source, title_fold,
           message_fold, now()
    FROM v
    ON CONFLICT (id) DO NOTHING
    RETURNING id
),
ins AS (
    INSERT INTO {s}.deliveries (alert_id, channel, key, status, error, created_at, queued_at,
                                due_at, owner, token, lease_until, grp)
    SELECT w.alert_id, w.channel, w.key,
           CASE WHEN s.by_alert IS NOT NULL THEN 'suppressed'
                WHEN w.final IS NOT NULL THEN w.final
                WHEN w.held THEN 'held' ELSE 'pending' END,
           CASE WHEN s.by_alert IS NOT NULL THEN %(never)s
                WHEN w.held OR w.final IS NOT NULL THEN w.note END,
           w.created_at, %(now)s,
           CASE WHEN s.by_alert IS NULL AND w.held THEN w.due ELSE %(now)s END,
           CASE WHEN s.by_alert IS NULL AND NOT w.held AND w.final IS NULL THEN %(owner)s END,
           CASE WHEN s.by_alert IS NULL AND NOT w.held AND w.final IS NULL THEN w.token END,
           CASE WHEN s.by_alert IS NULL AND NOT w.held AND w.final IS NULL
                THEN %(until)s::timestamptz END,
           CASE WHEN s.by_alert IS NULL AND w.held THEN w.grp END
    FROM w LEFT JOIN (SELECT DISTINCT by_alert, channel FROM sup) s
        ON s.by_alert = w.alert_id AND s.channel = w.channel
    ORDER BY w.ord
    ON CONFLICT (alert_id, channel) DO NOTHING
    RETURNING alert_id, channel, status, grp
),
"""

_RECORD_END = """
star AS (
    DELETE FROM {s}.deliveries x
    WHERE x.channel = %(route_later)s AND x.alert_id IN (
        SELECT id FROM v WHERE id NOT IN (SELECT id FROM new))
    RETURNING x.alert_id
)
SELECT 'n', id, NULL FROM new
UNION ALL SELECT 'd', alert_id, channel FROM ins WHERE status = 'pending'
UNION ALL SELECT 'f', ins.alert_id, ins.channel FROM ins JOIN w
    ON w.alert_id = ins.alert_id AND w.channel = ins.channel WHERE w.final IS NOT NULL
UNION ALL SELECT 's', by_alert, channel FROM sup
"""

# Only when a batch has members of groups: one job per group, rows in the order
# of their keys (so that batches racing for the same groups lock them in one order).
_GROUP_JOBS = """
jobs_due AS (
    INSERT INTO {s}.jobs AS j (kind, ref, due_at, payload)
    SELECT %(group_kind)s, ins.grp, min(coalesce(w.flush, w.due)), jsonb_build_object()
    FROM ins JOIN w ON w.alert_id = ins.alert_id AND w.channel = ins.channel
    WHERE ins.grp IS NOT NULL
    GROUP BY ins.grp
    ORDER BY ins.grp
    ON CONFLICT (kind, ref) DO UPDATE SET due_at = EXCLUDED.due_at
        WHERE EXCLUDED.due_at < j.due_at
    RETURNING 1
),
"""


def _record_sql(resolves: bool, groups: bool) -> str:
    """The recording statement: with the supersede step when the batch has resolves,
    with the group jobs' step when it has members of groups."""
    return (
        _RECORD_HEAD
        + (_SUPERSEDE if resolves else _NO_SUPERSEDE)
        + _RECORD_INSERTS
        + (_GROUP_JOBS if groups else "")
        + _RECORD_END
    )


_RECORDS = {(r, g): binary(_record_sql(r, g)) for r in (False, True) for g in (False, True)}

# ---------------------------------------------------------------------------
# Settling, claiming, renewing, releasing
# ---------------------------------------------------------------------------

# The alerts' rows are locked first, so that of two instances settling the last
# deliveries of one alert, the second sees the first's results and reports it done.
_LOCK_ALERTS = binary(
    "SELECT 1 FROM {s}.alerts WHERE id = ANY(%(ids)s) ORDER BY id FOR NO KEY UPDATE"
)

_SETTLE = binary(f"""
WITH o AS (
    SELECT * FROM unnest(%(ord)s::int[], %(alert)s::text[], %(channel)s::text[],
                         %(token)s::text[], %(status)s::text[], %(attempts)s::int[],
                         %(error)s::text[], %(latency)s::float8[], %(receipt)s::text[],
                         %(due)s::timestamptz[])
        AS o (ord, alert_id, channel, token, status, attempts, error, latency, receipt, due)
),
upd AS (
    UPDATE {{s}}.deliveries d
    SET status = o.status, attempts = o.attempts, error = o.error, latency = o.latency,
        receipt = o.receipt::jsonb, due_at = coalesce(o.due, d.due_at),
        recorded_at = now(), recorded_by = d.owner,
        owner = NULL, token = NULL, lease_until = NULL
    FROM o
    WHERE d.alert_id = o.alert_id AND d.channel = o.channel AND d.token = o.token
      AND d.status IN {_WAITING}
    RETURNING o.ord
)
SELECT ord FROM upd
""")

_FINISHED = binary(f"""
SELECT a.id FROM unnest(%(ids)s::text[]) AS a (id)
WHERE NOT EXISTS (SELECT 1 FROM {{s}}.deliveries d
                  WHERE d.alert_id = a.id AND d.status IN {_WAITING})
""")

# Claiming: the due rows (soonest first), then the claim, in one statement.
_CLAIM = (
    "WITH "
    + DEAD_OWNERS.strip()
    + f""",
due AS (
    SELECT d.alert_id, d.channel FROM {{s}}.deliveries d
    WHERE d.status IN {_WAITING} AND {{which}} AND d.due_at <= %(now)s AND {_FREE.format(t="d")}
    ORDER BY {{order}}
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE {{s}}.deliveries d
SET owner = %(owner)s, lease_until = %(until)s,
    token = replace(gen_random_uuid()::text, '-', '')
FROM due, {{s}}.alerts a
WHERE d.alert_id = due.alert_id AND d.channel = due.channel AND a.id = d.alert_id
RETURNING d.alert_id, d.channel, d.token, d.attempts, d.queued_at, {{order}}, a.body
"""
)
# claim_due(): due deliveries outside groups, soonest first.
_CLAIM_DUE = _CLAIM.replace("{which}", "d.grp IS NULL").replace("{order}", "d.due_at, d.seq")
# claim_group(): the group's due members, oldest first (LIMIT NULL: all of them).
_CLAIM_GROUP = _CLAIM.replace("{which}", "d.grp = %(group)s").replace(
    "{order}", "d.created_at, d.seq"
)

_RENEW = f"""
UPDATE {{s}}.deliveries d SET lease_until = %(until)s
FROM unnest(%(alert)s::text[], %(channel)s::text[], %(token)s::text[])
    AS c (alert_id, channel, token)
WHERE d.alert_id = c.alert_id AND d.channel = c.channel AND d.token = c.token
  AND d.status IN {_WAITING}
"""

_RELEASE = f"""
UPDATE {{s}}.deliveries d SET owner = NULL, token = NULL, lease_until = NULL
FROM unnest(%(alert)s::text[], %(channel)s::text[], %(token)s::text[])
    AS c (alert_id, channel, token)
WHERE d.alert_id = c.alert_id AND d.channel = c.channel AND d.token = c.token
  AND d.status IN {_WAITING}
"""

_FAIL_UNREADABLE = f"""
UPDATE {{s}}.deliveries d SET status = 'failed', error = c.error, recorded_at = now(),
    recorded_by = d.owner, owner = NULL, token = NULL, lease_until = NULL
FROM unnest(%(alert)s::text[], %(channel)s::text[], %(token)s::text[], %(error)s::text[])
    AS c (alert_id, channel, token, error)
WHERE d.alert_id = c.alert_id AND d.channel = c.channel AND d.token = c.token
  AND d.status IN {_WAITING}
"""

_RELEASE_JOBS = """
UPDATE {s}.jobs j SET owner = NULL, token = NULL, lease_until = NULL
FROM unnest(%(kind)s::text[], %(ref)s::text[], %(token)s::text[]) AS c (kind, ref, token)
WHERE j.kind = c.kind AND j.ref = c.ref AND j.token = c.token
"""

_GIVE_BACK = f"""
UPDATE {{s}}.deliveries SET owner = NULL, token = NULL, lease_until = NULL
WHERE owner = %(owner)s AND status IN {_WAITING}
"""
_GIVE_BACK_JOBS = (
    "UPDATE {s}.jobs SET owner = NULL, token = NULL, lease_until = NULL WHERE owner = %(owner)s"
)
_FORGET_OWNER = "DELETE FROM {s}.owners WHERE owner = %(owner)s"

# ---------------------------------------------------------------------------
# Jobs
# ---------------------------------------------------------------------------

_SCHEDULE = """
INSERT INTO {s}.jobs (kind, ref, due_at, payload)
SELECT * FROM unnest(%(kind)s::text[], %(ref)s::text[], %(due)s::timestamptz[],
                     %(payload)s::jsonb[])
ON CONFLICT (kind, ref) DO UPDATE SET due_at = EXCLUDED.due_at, payload = EXCLUDED.payload,
    owner = NULL, token = NULL, lease_until = NULL
RETURNING kind, ref
"""

_SCHEDULE_KEEP = """
INSERT INTO {s}.jobs (kind, ref, due_at, payload)
SELECT * FROM unnest(%(kind)s::text[], %(ref)s::text[], %(due)s::timestamptz[],
                     %(payload)s::jsonb[])
ON CONFLICT (kind, ref) DO NOTHING
RETURNING kind, ref
"""

_CLAIM_JOBS = (
    "WITH "
    + DEAD_OWNERS.strip()
    + f""",
due AS (
    SELECT j.kind, j.ref FROM {{s}}.jobs j
    WHERE j.due_at <= %(now)s AND {_FREE.format(t="j")}
    ORDER BY j.due_at, j.kind, j.ref
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE {{s}}.jobs j
SET owner = %(owner)s, lease_until = %(until)s,
    token = replace(gen_random_uuid()::text, '-', '')
FROM due WHERE j.kind = due.kind AND j.ref = due.ref
RETURNING j.kind, j.ref, j.due_at, j.payload, j.token
"""
)

# Finishing a group's job: its row is locked first, so that the members read
# next include those of every recording that moved the job before (a member
# recorded later finds the job, or puts it back). The job is kept, due no later
# than its earliest waiting member, while any waits.
_LOCK_JOB = """
SELECT 1 FROM {s}.jobs WHERE kind = %(kind)s AND ref = %(ref)s AND token = %(token)s
FOR UPDATE
"""

_FINISH_GROUP = f"""
WITH first AS (
    SELECT min(d.due_at) AS due FROM {{s}}.deliveries d
    WHERE d.grp = %(ref)s AND d.status IN {_WAITING}
),
kept AS (
    UPDATE {{s}}.jobs j
    SET due_at = LEAST(%(due)s::timestamptz, first.due), payload = %(payload)s::jsonb,
        owner = NULL, token = NULL, lease_until = NULL
    FROM first
    WHERE j.kind = %(kind)s AND j.ref = %(ref)s AND j.token = %(token)s
      AND (first.due IS NOT NULL OR %(due)s::timestamptz IS NOT NULL)
    RETURNING 1
),
gone AS (
    DELETE FROM {{s}}.jobs j USING first
    WHERE j.kind = %(kind)s AND j.ref = %(ref)s AND j.token = %(token)s
      AND first.due IS NULL AND %(due)s::timestamptz IS NULL
    RETURNING 1
)
SELECT (SELECT count(*) FROM kept) + (SELECT count(*) FROM gone)
"""

# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------

# A page of history: the alerts, then their deliveries and events, three
# statements on one snapshot in one round trip.
_PAGE_DELIVERIES = """
SELECT d.alert_id, d.channel, d.status, d.attempts, d.error, d.latency, d.receipt,
       extract(epoch FROM d.due_at)
FROM {s}.deliveries d WHERE d.alert_id = ANY(ARRAY({page}))
ORDER BY d.seq
"""
_PAGE_EVENTS = """
SELECT e.alert_id, extract(epoch FROM e.at), e.kind, e.actor, e.via, e.note
FROM {s}.events e WHERE e.alert_id = ANY(ARRAY({page}))
ORDER BY e.at, e.seq
"""

_RESULTS_FOR = """
SELECT channel, status, attempts, error, latency, receipt, extract(epoch FROM due_at)
FROM {s}.deliveries WHERE alert_id = %(id)s AND channel <> %(route_later)s ORDER BY seq
"""

_LAST_RECEIPT = """
SELECT receipt FROM {s}.deliveries
WHERE key = %(key)s AND channel = %(channel)s AND status = 'sent' AND receipt IS NOT NULL
ORDER BY created_at DESC LIMIT 1
"""

# The alert count and, per channel and status, the count and the exact
# nearest-rank latency percentiles, in one statement.
_STATS = """
SELECT NULL, NULL, count(*), NULL FROM {s}.alerts WHERE created_at >= %(since)s
UNION ALL
SELECT channel, status, count(*),
       percentile_disc(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency)
           FILTER (WHERE status = 'sent' AND latency IS NOT NULL)
FROM {s}.deliveries
WHERE created_at >= %(since)s AND channel <> %(route_later)s
GROUP BY channel, status
"""

_PURGE = f"""
WITH gone AS (
    DELETE FROM {{s}}.alerts a
    WHERE a.created_at < %(before)s AND NOT EXISTS (
        SELECT 1 FROM {{s}}.deliveries d WHERE d.alert_id = a.id AND d.status IN {_WAITING})
    RETURNING 1
)
SELECT count(*) FROM gone
"""
_PURGE_STATE = "DELETE FROM {s}.state_keys WHERE expires_at < %(now)s"

_ADD_EVENTS = """
INSERT INTO {s}.events (alert_id, at, kind, actor, via, note)
SELECT e.* FROM unnest(%(alert)s::text[], %(at)s::timestamptz[], %(kind)s::text[],
                       %(actor)s::text[], %(via)s::text[], %(note)s::text[])
    AS e (alert_id, at, kind, actor, via, note)
WHERE EXISTS (SELECT 1 FROM {s}.alerts a WHERE a.id = e.alert_id)
"""


def _result(row: Sequence[Any]) -> DeliveryResult:
    channel, status, attempts, error, latency, receipt, due = row
    return DeliveryResult(
        channel=channel,
        status=status,
        attempts=attempts,
        error=error,
        latency=latency,
        receipt=dict(receipt) if receipt else None,
        next_attempt_at=dt(float(due)) if status in _DUE_SHOWN else None,
    )


def _entries(
    alerts: Sequence[tuple[Any, ...]],
    deliveries: Sequence[tuple[Any, ...]],
    events: Sequence[tuple[Any, ...]],
) -> list[HistoryEntry]:
    """History entries from a page's rows (alerts in order, then deliveries and events)."""
    results: dict[str, list[DeliveryResult]] = {}
    waiting: set[str] = set()
    for alert_id, channel, status, *rest in deliveries:
        if status in _WAITING_STATES:
            waiting.add(alert_id)
        if channel != ROUTE_LATER:
            results.setdefault(alert_id, []).append(_result((channel, status, *rest)))
    happened: dict[str, list[AlertEvent]] = {}
    for alert_id, at, kind, actor, via, note in events:
        happened.setdefault(alert_id, []).append(
            AlertEvent(alert_id, kind, dt(float(at)), actor, via, note)
        )
    return [
        HistoryEntry(
            Alert.from_dict(body),
            "pending" if alert_id in waiting else "done",
            tuple(results.get(alert_id, ())),
            tuple(happened.get(alert_id, ())),
        )
        for alert_id, body in alerts
    ]


#: The status filter that selects alerts with an acknowledgement event.
_ACKNOWLEDGED = "acknowledged"

#: ``stats_by``'s grouping expressions (on ``alerts a`` joined with ``deliveries d``).
_STATS_GROUPS = {
    "channel": "d.channel",
    "priority": "a.priority",
    "source": "a.source",
    "hour": "floor(extract(epoch FROM a.created_at) / 3600)::bigint",
}


def _where(query: HistoryQuery) -> tuple[str, dict[str, Any]]:
    """The WHERE clause (on ``alerts a``) and parameters of a history query."""
    clauses = ["true"]
    params: dict[str, Any] = {"route_later": ROUTE_LATER}
    if query.since is not None:
        clauses.append("a.created_at >= %(since)s")
        params["since"] = query.since
    if query.until is not None:
        clauses.append("a.created_at < %(until)s")
        params["until"] = query.until
    if query.priorities is not None:
        clauses.append("a.priority = ANY(%(priorities)s::smallint[])")
        params["priorities"] = sorted(int(p) for p in query.priorities)
    if query.status == _ACKNOWLEDGED:
        clauses.append(
            "EXISTS (SELECT 1 FROM {s}.events e WHERE e.alert_id = a.id AND e.kind = %(acked)s)"
        )
        params["acked"] = _ACKNOWLEDGED
    for column in ("status", "source", "key"):
        value = getattr(query, column)
        if value is not None and not (column == "status" and value == _ACKNOWLEDGED):
            clauses.append(f"a.{column} = %({column})s")
            params[column] = _text(value)
    if query.search is not None:
        clauses.append(
            "(strpos(a.title_fold, %(needle)s) > 0 OR strpos(a.message_fold, %(needle)s) > 0)"
        )
        params["needle"] = _text(query.search.casefold())
    if query.channel is not None or query.result is not None:
        inner = ["d.alert_id = a.id", "d.channel <> %(route_later)s"]
        if query.channel is not None:
            inner.append("d.channel = %(channel)s")
            params["channel"] = _text(query.channel)
        if query.result is not None:
            inner.append("d.status = %(result)s")
            params["result"] = query.result
        clauses.append(f"EXISTS (SELECT 1 FROM {{s}}.deliveries d WHERE {' AND '.join(inner)})")
    return " AND ".join(clauses), params


class PostgresHistoryStore(BaseHistoryStore):
    """The history and delivery timeline of every instance, in one PostgreSQL schema.

    ``url`` is ``postgresql://[user[:password]@]host[:port]/db[?schema=...]``;
    see :func:`pixalert_postgres.parse_url` for the options. The schema is
    created and migrated forward on first use. An owner (see
    :meth:`open_owner`) holds a session advisory lock for its lifetime, so the
    claims of an instance that died are taken over by the next sweep anywhere.
    """

    def __init__(self, url: str, *, clock: Any = None) -> None:
        self._db = Database(url, clock=clock)
        self._locks = OwnerLocks(self._db)
        # Claims whose result or release could not be written (the server went away
        # mid-call): given back by the next claim once the server answers, rather
        # than held by this live owner until their lease runs out.
        self._limbo: dict[tuple[str, str, str], None] = {}
        self._limbo_jobs: dict[tuple[str, str, str], None] = {}
        # Group commit of the calls every alert makes.
        self._records = Batcher(self._record_batch)
        self._settles = Batcher(self._settle_batch)

    def __repr__(self) -> str:
        return f"PostgresHistoryStore({self._db.display_url!r}, schema={self._db.schema!r})"

    __str__ = __repr__

    @property
    def database(self) -> Database:
        """The connection pool and schema this store uses."""
        return self._db

    @property
    def owner_locks(self) -> OwnerLocks:
        """The liveness locks of the owners opened through this handle."""
        return self._locks

    async def open(self) -> None:
        """Connect and migrate now, rather than on first use."""
        await self._db.open()

    def _owners(self) -> dict[str, Any]:
        return {"ns": self._locks.ns, "mine": self._locks.owners}

    @property
    def unwritten(self) -> int:
        """Claims (and job claims) waiting to be given back after a failed write."""
        return len(self._limbo) + len(self._limbo_jobs)

    def _unwritten(self, alerts: list[str], channels: list[str], tokens: list[str]) -> None:
        self._limbo.update(dict.fromkeys(zip(alerts, channels, tokens, strict=True)))

    async def _give_back_unwritten(self) -> None:
        """Release the claims whose write failed, now that the server may answer.

        A result that was written after all is final: releasing it changes nothing.
        """
        if self._limbo:
            items = list(self._limbo)
            await self._db.fetch(
                _RELEASE,
                {
                    "alert": [i[0] for i in items],
                    "channel": [i[1] for i in items],
                    "token": [i[2] for i in items],
                },
            )
            for item in items:
                self._limbo.pop(item, None)
        if self._limbo_jobs:
            jobs = list(self._limbo_jobs)
            await self._db.fetch(
                _RELEASE_JOBS,
                {
                    "kind": [i[0] for i in jobs],
                    "ref": [i[1] for i in jobs],
                    "token": [i[2] for i in jobs],
                },
            )
            for job in jobs:
                self._limbo_jobs.pop(job, None)

    # -- owners ------------------------------------------------------------

    async def open_owner(self, owner: str) -> None:
        """Take ``owner``'s advisory lock on a connection of its own, until
        :meth:`close_owner` or :meth:`aclose` (or the process ends). While the
        server is unreachable the lock is taken as soon as it answers again."""
        await self._locks.open(owner)

    async def close_owner(self, owner: str) -> None:
        """Give back ``owner``'s unfinished claims and jobs, then drop its lock."""
        params = {"owner": owner}
        try:
            await self._db.transaction(
                [(_GIVE_BACK, params), (_GIVE_BACK_JOBS, params), (_FORGET_OWNER, params)]
            )
        finally:
            await self._locks.close(owner)

    # -- alerts and deliveries ---------------------------------------------

    async def record(
        self, alert: Alert, channels: Sequence[str | Planned], *, owner: str, lease: float
    ) -> Recorded:
        """Store ``alert`` with a delivery per channel: claimed by ``owner``, or held
        as its :class:`~pixalert.storage.Planned` record says."""
        return (await self.record_many([alert], [channels], owner=owner, lease=lease))[0]

    async def record_many(
        self,
        alerts: Sequence[Alert],
        channels: Sequence[Sequence[str | Planned]],
        *,
        owner: str,
        lease: float,
    ) -> list[Recorded]:
        """:meth:`record` for each alert, all in one statement (all or none), the jobs
        of the groups its held deliveries join included. Calls made while one runs
        are written together in the next statement (group commit)."""
        if len(alerts) != len(channels):
            raise ValueError("record_many: expected one channel list per alert")
        return await self._records(list(zip(alerts, channels, strict=True)), (owner, lease))

    async def _record_batch(
        self, batch: list[tuple[Alert, Sequence[str | Planned]]], group: Hashable
    ) -> list[Recorded]:
        """Record a batch of (alert, channels) of one (owner, lease) in one statement."""
        owner, lease = cast("tuple[str, float]", group)
        now = self._db.clock.now()
        a: dict[str, list[Any]] = {
            name: []
            for name in (
                *("id", "key", "created", "status", "priority", "body"),
                *("source", "title", "message"),
            )
        }
        w: dict[str, list[Any]] = {
            name: []
            for name in (
                *("ord", "alert", "channel", "key", "resolved", "token", "created"),
                *("held", "due", "grp", "note", "flush", "final"),
            )
        }
        wanted: list[list[str]] = []
        tokens: dict[tuple[str, str], str] = {}
        resolves = groups = False
        for alert, names in batch:
            a["id"].append(_text(alert.id))
            a["key"].append(_text(alert.key))
            a["created"].append(alert.created_at)
            a["status"].append(alert.status)
            a["priority"].append(int(alert.priority))
            a["body"].append(_json(alert.to_dict()))
            a["source"].append(_text(alert.source))
            a["title"].append(_text(alert.title.casefold()))
            a["message"].append(_text(alert.message.casefold()))
            mine = []
            plans: dict[str, Planned] = {}
            for plan in planned(names):  # one per channel, the first one wins
                plans.setdefault(_text(str(plan.channel)), plan)
            for name, plan in plans.items():
                mine.append(name)
                if (alert.id, name) in tokens:
                    continue  # the same alert twice in one batch: its first time counts
                tokens[(alert.id, name)] = token = _token()
                held = plan.held(now)
                w["ord"].append(len(w["ord"]))
                w["alert"].append(_text(alert.id))
                w["channel"].append(name)
                w["key"].append(_text(alert.key))
                w["resolved"].append(alert.resolved)
                w["token"].append(token)
                w["created"].append(alert.created_at)
                w["held"].append(held)
                w["due"].append(dt(now if plan.due is None else float(plan.due)) if held else None)
                w["grp"].append(_maybe(plan.group) if held else None)
                w["note"].append(_maybe(plan.note) if held or plan.final else None)
                w["final"].append(None if plan.final is None else plan.final.value)
                w["flush"].append(
                    dt(float(plan.flush_by)) if held and plan.flush_by is not None else None
                )
                resolves = resolves or alert.resolved
                groups = groups or (held and plan.group is not None)
            wanted.append(mine)
        params: dict[str, Any] = {f"a_{k}": v for k, v in a.items()}
        params.update({f"w_{k}": v for k, v in w.items()})
        params.update(
            now=dt(now),
            until=dt(now + lease),
            owner=owner,
            never=NEVER_NOTIFIED,
            superseded=SUPERSEDED,
            route_later=ROUTE_LATER,
            group_kind=GROUP_JOB,
            **self._owners(),
        )
        try:
            rows = await self._db.fetch(_RECORDS[(resolves, groups)], params)
        except StoreUnavailable:
            # Perhaps stored all the same (the answer was lost): free its claims later.
            self._unwritten(w["alert"], w["channel"], w["token"])
            raise
        claimed: set[tuple[str, str]] = set()
        superseded: dict[str, set[str]] = {}
        final: dict[str, set[str]] = {}
        for kind, alert_id, channel in rows:
            if kind == "d":
                claimed.add((alert_id, channel))
            elif kind == "s":
                superseded.setdefault(alert_id, set()).add(channel)
            elif kind == "f":
                final.setdefault(alert_id, set()).add(channel)
        out = []
        for (alert, _), names in zip(batch, wanted, strict=True):
            claims = []
            for name in names:
                if (alert.id, name) in claimed:
                    claimed.discard((alert.id, name))  # to its first occurrence only
                    claims.append(Claim(alert, name, tokens[(alert.id, name)], 0, now))
            out.append(
                Recorded(
                    alert,
                    tuple(claims),
                    frozenset(superseded.get(alert.id, ())),
                    frozenset(final.get(alert.id, set()) - superseded.get(alert.id, set())),
                )
            )
        return out

    async def settle(self, outcomes: Sequence[tuple[Claim, DeliveryResult]]) -> Settled:
        """Write every outcome whose claim is still held: one transaction, one round trip,
        shared with the calls made while the one before ran (group commit)."""
        for claim, result in outcomes:
            check_outcome(claim, result)
        marks = await self._settles(outcomes)
        pairs = zip(outcomes, marks, strict=True)
        finished = {claim.alert.id for (claim, _), (_, last) in pairs if last}
        ids = dict.fromkeys(claim.alert.id for claim, _ in outcomes)
        return Settled(
            tuple(accepted for accepted, _ in marks), tuple(i for i in ids if i in finished)
        )

    async def _settle_batch(
        self, outcomes: list[tuple[Claim, DeliveryResult]], group: Hashable
    ) -> list[tuple[bool, bool]]:
        """Settle a batch: per outcome, whether it was written and whether it was the
        last one written for an alert that has no delivery left waiting."""
        o: dict[str, list[Any]] = {
            name: []
            for name in (
                *("ord", "alert", "channel", "token", "status", "attempts"),
                *("error", "latency", "receipt", "due"),
            )
        }
        for n, (claim, result) in enumerate(outcomes):
            o["ord"].append(n)
            o["alert"].append(claim.alert.id)
            o["channel"].append(claim.channel)
            o["token"].append(claim.token)
            o["status"].append(result.status.value)
            o["attempts"].append(result.attempts)
            o["error"].append(_maybe(result.error))
            o["latency"].append(result.latency)
            o["receipt"].append(_json(dict(result.receipt)) if result.receipt else None)
            o["due"].append(result.next_attempt_at)
        ids = sorted(set(o["alert"]))
        try:
            _, updated, finished = await self._db.transaction(
                [
                    (_LOCK_ALERTS, {"ids": ids}),
                    (_SETTLE, o),
                    (_FINISHED, {"ids": ids}),
                ]
            )
        except StoreUnavailable:
            self._unwritten(o["alert"], o["channel"], o["token"])
            raise
        done = {row[0] for row in updated}
        final = {row[0] for row in finished}
        # An alert done is reported once, by the last outcome written for it.
        last = {o["alert"][n]: n for n in sorted(done) if o["alert"][n] in final}
        return [(n in done, last.get(o["alert"][n]) == n) for n in range(len(outcomes))]

    async def claim_due(self, *, owner: str, lease: float, limit: int = 100) -> list[Claim]:
        """Claim up to ``limit`` due deliveries held by no live owner, soonest first
        (members of groups excepted: see :meth:`claim_group`)."""
        if limit <= 0:
            return []
        return await self._claim(_CLAIM_DUE, owner=owner, lease=lease, limit=limit)

    async def claim_group(
        self, group: str, *, owner: str, lease: float, limit: int | None = None
    ) -> list[Claim]:
        """Claim the due waiting members of ``group`` held by no live owner, oldest first
        (one statement; the caller holds the group's job)."""
        if limit is not None and limit <= 0:
            return []
        return await self._claim(
            _CLAIM_GROUP, owner=owner, lease=lease, limit=limit, group=_text(group)
        )

    async def _claim(
        self, sql: str, *, owner: str, lease: float, limit: int | None, **extra: Any
    ) -> list[Claim]:
        """Run a claiming statement; its claims in its order. A delivery whose alert this
        version cannot read fails (logged) rather than block the others."""
        await self._give_back_unwritten()
        now = self._db.clock.now()
        rows = await self._db.fetch(
            sql,
            {
                "now": dt(now),
                "until": dt(now + lease),
                "owner": owner,
                "limit": limit,
                **extra,
                **self._owners(),
            },
        )
        rows.sort(key=lambda row: (row[5], row[6]))
        alerts: dict[str, Alert] = {}
        claims = []
        unreadable: dict[str, list[Any]] = {"alert": [], "channel": [], "token": [], "error": []}
        for alert_id, channel, token, attempts, queued_at, _, _, body in rows:
            alert = alerts.get(alert_id)
            if alert is None:
                try:
                    alert = alerts[alert_id] = Alert.from_dict(body)
                except Exception as exc:  # a row this version cannot read must not block the rest
                    reason = f"unreadable alert: {type(exc).__name__}: {exc}"[:300]
                    log.error("postgres: alert %s: %s; its delivery fails", alert_id, reason)
                    row = (alert_id, channel, token, reason)
                    for name, value in zip(unreadable, row, strict=True):
                        unreadable[name].append(value)
                    continue
            claims.append(Claim(alert, channel, token, attempts, queued_at.timestamp()))
        if unreadable["alert"]:
            await self._db.fetch(_FAIL_UNREADABLE, unreadable)
        return claims

    @staticmethod
    def _claim_arrays(claims: Sequence[Claim]) -> dict[str, list[str]]:
        return {
            "alert": [c.alert.id for c in claims],
            "channel": [c.channel for c in claims],
            "token": [c.token for c in claims],
        }

    async def renew(self, claims: Sequence[Claim], lease: float) -> None:
        """Extend the claims still held by ``lease`` seconds from now (one statement)."""
        if claims:
            params = {"until": dt(self._db.clock.now() + lease), **self._claim_arrays(claims)}
            await self._db.fetch(_RENEW, params)

    async def release(self, claims: Sequence[Claim]) -> None:
        """Give back claims still held: due again at once (one statement)."""
        if claims:
            arrays = self._claim_arrays(claims)
            try:
                await self._db.fetch(_RELEASE, arrays)
            except StoreUnavailable:
                self._unwritten(arrays["alert"], arrays["channel"], arrays["token"])
                raise

    # -- jobs --------------------------------------------------------------

    async def schedule(self, jobs: Sequence[Job], *, replace: bool = True) -> list[bool]:
        """Put jobs on the timeline (one statement); True for each one written."""
        if not jobs:
            return []
        # One row per (kind, ref): with replace the last of a batch wins, else the first.
        chosen: dict[tuple[str, str], Job] = {}
        for job in jobs:
            if replace or (job.kind, job.ref) not in chosen:
                chosen[(job.kind, job.ref)] = job
        rows = await self._db.fetch(
            _SCHEDULE if replace else _SCHEDULE_KEEP,
            {
                "kind": [j.kind for j in chosen.values()],
                "ref": [j.ref for j in chosen.values()],
                "due": [dt(float(j.due)) for j in chosen.values()],
                "payload": [_json(dict(j.payload)) for j in chosen.values()],
            },
        )
        written = {(kind, ref) for kind, ref in rows}
        seen: set[tuple[str, str]] = set()
        out = []
        for job in jobs:
            key = (job.kind, job.ref)
            out.append(key in written and (replace or key not in seen))
            seen.add(key)
        return out

    async def cancel_jobs(self, kind: str, refs: Sequence[str]) -> int:
        """Remove these jobs of ``kind``; how many there were."""
        if not refs:
            return 0
        rows = await self._db.fetch(
            "WITH gone AS (DELETE FROM {s}.jobs WHERE kind = %(kind)s AND ref = ANY(%(refs)s) "
            "RETURNING 1) SELECT count(*) FROM gone",
            {"kind": kind, "refs": list(refs)},
        )
        return int(rows[0][0])

    async def claim_jobs(self, *, owner: str, lease: float, limit: int = 100) -> list[JobClaim]:
        """Claim up to ``limit`` due jobs held by no live owner, soonest first."""
        if limit <= 0:
            return []
        await self._give_back_unwritten()
        now = self._db.clock.now()
        rows = await self._db.fetch(
            _CLAIM_JOBS,
            {
                "now": dt(now),
                "until": dt(now + lease),
                "owner": owner,
                "limit": limit,
                **self._owners(),
            },
        )
        rows.sort(key=lambda row: (row[2], row[0], row[1]))
        return [
            JobClaim(Job(kind, ref, due.timestamp(), dict(payload)), token)
            for kind, ref, due, payload, token in rows
        ]

    async def finish_job(
        self,
        claim: JobClaim,
        *,
        next_due: float | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> bool:
        """Remove a claimed job, or put it back at ``next_due``; False if no longer held.

        A group's job is kept while members of its group wait, due no later than the
        earliest of them (one transaction).
        """
        job = claim.job
        params: dict[str, Any] = {"kind": job.kind, "ref": job.ref, "token": claim.token}
        if job.kind == GROUP_JOB:
            params["due"] = None if next_due is None else dt(float(next_due))
            params["payload"] = _json(dict(job.payload if payload is None else payload))
            try:
                _, (row,) = await self._db.transaction(
                    [(_LOCK_JOB, params), (_FINISH_GROUP, params)]
                )
            except StoreUnavailable:
                self._limbo_jobs[(job.kind, job.ref, claim.token)] = None
                raise
            return bool(row[0] == 1)
        if next_due is None:
            sql = (
                "DELETE FROM {s}.jobs WHERE kind = %(kind)s AND ref = %(ref)s AND token = %(token)s"
            )
        else:
            sql = (
                "UPDATE {s}.jobs SET due_at = %(due)s, payload = %(payload)s::jsonb, "
                "owner = NULL, token = NULL, lease_until = NULL "
                "WHERE kind = %(kind)s AND ref = %(ref)s AND token = %(token)s"
            )
            params["due"] = dt(float(next_due))
            params["payload"] = _json(dict(job.payload if payload is None else payload))
        try:
            async with self._db.connection() as conn:
                cursor = await conn.execute(self._db.sql(sql), params)
                return bool(cursor.rowcount == 1)
        except StoreUnavailable:
            self._limbo_jobs[(job.kind, job.ref, claim.token)] = None
            raise

    async def jobs(self, kind: str | None = None) -> list[Job]:
        """The scheduled jobs (of ``kind``), soonest first."""
        sql = "SELECT kind, ref, due_at, payload FROM {s}.jobs"
        if kind is not None:
            sql += " WHERE kind = %(kind)s"
        rows = await self._db.fetch(sql + " ORDER BY due_at, kind, ref", {"kind": kind})
        return [Job(k, r, d.timestamp(), dict(p)) for k, r, d, p in rows]

    # -- events and queries --------------------------------------------------

    async def add_events(self, events: Sequence[AlertEvent]) -> None:
        """Keep events with their alerts (one statement; events of unknown alerts are dropped)."""
        if events:
            await self._db.fetch(
                _ADD_EVENTS,
                {
                    "alert": [e.alert_id for e in events],
                    "at": [e.at for e in events],
                    "kind": [_text(e.kind) for e in events],
                    "actor": [_maybe(e.by) for e in events],
                    "via": [_maybe(e.via) for e in events],
                    "note": [_maybe(e.note) for e in events],
                },
            )

    async def results_for(self, alert_id: str) -> list[DeliveryResult]:
        """The alert's deliveries as results, in the order they were recorded."""
        rows = await self._db.fetch(_RESULTS_FOR, {"id": alert_id, "route_later": ROUTE_LATER})
        return [_result(row) for row in rows]

    async def last_receipt(self, key: str, channel: str) -> Mapping[str, str] | None:
        """The receipt of the newest successful send of ``key`` on ``channel``."""
        rows = await self._db.fetch(_LAST_RECEIPT, {"key": key, "channel": str(channel)})
        return dict(rows[0][0]) if rows else None

    async def entries(self, query: HistoryQuery) -> list[HistoryEntry]:
        """The alerts ``query`` selects, newest first, with deliveries and events
        (one round trip, one snapshot)."""
        where, params = _where(query)
        tail = f"FROM {{s}}.alerts a WHERE {where} ORDER BY a.created_at DESC, a.id DESC"
        if query.limit is not None:
            tail += " LIMIT %(limit)s"
            params["limit"] = query.limit
        return await self._page(tail, params)

    async def entry(self, alert_id: str) -> HistoryEntry | None:
        """One alert by id, or None."""
        found = await self._page("FROM {s}.alerts a WHERE a.id = %(id)s", {"id": alert_id})
        return found[0] if found else None

    async def _page(self, tail: str, params: dict[str, Any]) -> list[HistoryEntry]:
        """The entries of the alerts ``SELECT ... <tail>`` selects, in its order."""
        ids = f"SELECT a.id {tail}"
        alerts, deliveries, events = await self._db.transaction(
            [
                (f"SELECT a.id, a.body {tail}", params),
                (_PAGE_DELIVERIES.replace("{page}", ids), params),
                (_PAGE_EVENTS.replace("{page}", ids), params),
            ],
            snapshot=True,
        )
        return _entries(alerts, deliveries, events)

    async def stats(self, since: datetime) -> dict[str, Any]:
        """Per-channel counts, success rate and p50/p95/p99 latency since ``since``.

        The shape of :func:`pixalert.storage.build_stats`; percentiles are exact
        nearest-rank values (``percentile_disc``) computed in the database.
        """
        rows = await self._db.fetch(_STATS, {"since": since, "route_later": ROUTE_LATER})
        alerts = 0
        counts: dict[tuple[str, str], int] = {}
        for channel, status, n, _ in rows:
            if channel is None:
                alerts = int(n)
            else:
                counts[(channel, status)] = int(n)
        stats: dict[str, Any] = build_stats(since, alerts, counts, {})
        for channel, status, _, values in rows:
            if status == "sent" and values and values[0] is not None:
                stats["channels"][channel]["latency"] = {
                    "p50": round(values[0], 6),
                    "p95": round(values[1], 6),
                    "p99": round(values[2], 6),
                }
        return stats

    async def stats_by(self, since: datetime, until: datetime | None, by: str) -> dict[str, Any]:
        """Counts per channel, priority, source or hour of the alerts created in
        ``[since, until)``: the shape of :func:`pixalert.storage.build_stats_by`,
        grouped in the database (one snapshot); percentiles are exact
        nearest-rank values (``percentile_disc``)."""
        group = _STATS_GROUPS[check_stats_by(by)]
        where, params = _where(HistoryQuery(since=since, until=until, limit=None))
        join = (
            "FROM {s}.alerts a JOIN {s}.deliveries d "
            "ON d.alert_id = a.id AND d.channel <> %(route_later)s"
        )
        per_group = (
            f"SELECT d.channel, count(DISTINCT d.alert_id) {join} WHERE {where} GROUP BY 1"
            if by == "channel"
            else f"SELECT {group}, count(*) FROM {{s}}.alerts a WHERE {where} GROUP BY 1"
        )
        per_status = (
            f"SELECT {group}, d.status, count(*), "
            "percentile_disc(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY d.latency) "
            "FILTER (WHERE d.status = 'sent' AND d.latency IS NOT NULL) "
            f"{join} WHERE {where} GROUP BY 1, 2"
        )
        total, groups, rows = await self._db.transaction(
            [
                (f"SELECT count(*) FROM {{s}}.alerts a WHERE {where}", params),
                (per_group, params),
                (per_status, params),
            ],
            snapshot=True,
        )

        def name(value: Any) -> str:
            if by == "priority":
                return Priority(int(value)).name
            if by == "hour":
                return hour_key(int(value) * 3600)
            return str(value)

        counts = {(name(g), status): int(n) for g, status, n, _ in rows}
        stats: dict[str, Any] = build_stats_by(
            since,
            until,
            by,
            int(total[0][0]),
            {name(g): int(n) for g, n in groups},
            counts,
            {},
        )
        for g, status, _, values in rows:
            if status == "sent" and values and values[0] is not None:
                stats["groups"][name(g)]["latency"] = {
                    "p50": round(values[0], 6),
                    "p95": round(values[1], 6),
                    "p99": round(values[2], 6),
                }
        return stats

    async def purge(self, before: datetime) -> int:
        """Delete finished alerts created before ``before`` (with their deliveries and
        events) and expired state keys; return how many alerts."""
        removed, _ = await self._db.transaction(
            [(_PURGE, {"before": before}), (_PURGE_STATE, {"now": self._db.now()})]
        )
        return int(removed[0][0])

    async def health(self) -> Mapping[str, Any]:
        """``{"status": "ok", "pending": n, "retrying": n, ...}``, or degraded with the reason."""
        report = await self._db.health("history")
        report.update(self._locks.report())
        if self.unwritten:
            report["unwritten_claims"] = self.unwritten
        return report

    async def aclose(self) -> None:
        """Close the connections. Owners not closed first are left as a process that
        died leaves them: their locks go, and other instances take their claims."""
        await self._records.aclose()
        await self._settles.aclose()
        await self._locks.aclose()
        await self._db.aclose()
