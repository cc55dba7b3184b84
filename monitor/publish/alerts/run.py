"""Evaluating the alert rules against the store and notifying.

One evaluation at `now`:

1. read the rows the rules need and the stored alert states (`observe`);
2. the pure core (`alert_rules.evaluate`, `alert_state.diff`) says which states change;
3. each change is written guarded by the old values (compare-and-set), so when two instances
   evaluate together exactly one makes each transition (`apply_changes`);
4. the states are read back and the notices they owe are grouped by (rule, event)
   (`alert_groups`) and claimed a group at a time: in one transaction, a guarded update of each
   member's `last_notified_at` and one `delivery` row per notifier for the members this call
   took, with a unique key (`alert:<rule>:<event>:<now>:<hash of the episodes>:notify[i]`), so
   each notice is claimed once whatever runs concurrently (`claim_notices`);
5. due deliveries are attempted with `monitor.publish.deliveries` (retries with backoff, every
   attempt stored) by `send_due`.

A dry run stops after 2 and reports what would change and be sent; it stores nothing.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, or_, select, update

from monitor.config import Settings
from monitor.publish.alerts.groups import combine, group, group_key
from monitor.publish.alerts.notices import CALL_RULES, build
from monitor.publish.alerts.rules import (
    INQUIRY_RULES,
    LONGEST_STAY,
    RULES,
    AlertInputs,
    due_soon_margin,
    evaluate,
    flooded,
    is_source_wide,
    split_subject,
)
from monitor.publish.alerts.state import (
    FIRING,
    OK,
    Change,
    Key,
    Notice,
    Plan,
    State,
    advance,
    after_change,
    diff,
    notices,
)
from monitor.publish.deliveries import (
    FAILED,
    PENDING,
    SENT,
    DeliveryError,
    Pending,
    claim,
    deliver_due,
)
from monitor.publish.mailer import message_id_for
from monitor.publish.notifiers import notifier_for
from monitor.store.backlog import due_by, due_count, oldest_open, open_counts, open_groups
from monitor.store.database import insert_ignore, transaction
from monitor.store.health import health_from_rows, unread_since
from monitor.store.installation import installation_key
from monitor.store.schema import (
    ALERT_STATES,
    CALLS,
    FIRING_ALERT,
    INQUIRIES,
    STATES,
    WAITING_CALL,
)

logger = logging.getLogger(__name__)

# Resolved states are kept this long (a resolve notice held over a long closed weekend still
# goes out), then deleted, so per-caller and per-inquiry subjects do not pile up for ever.
PRUNE_AFTER = timedelta(days=7)


@dataclass(frozen=True)
class Sent:
    """One notification to one notifier, as it is (or would be) sent."""

    notify: int  # the index in alerts.notify
    kind: str  # email | webhook
    to: str  # where, without secrets
    body: dict[str, Any]  # the notice (monitor.publish.alerts.notices / groups)
    message_id: str | None = None  # e-mail: from the delivery's key


@dataclass(frozen=True)
class Told:
    """A notification claimed (or, in a dry run, that would be): the notices it tells, its body
    as the support team reads it (customers named), who gets it, and each notifier's own
    version (a webhook's names no customer unless `include_customer`)."""

    notices: list[Notice]
    body: dict[str, Any]
    to: list[str]
    sends: list[Sent] = field(default_factory=list)


class _KeyTaken(Exception):
    """A group's delivery key exists already: roll its claims back, so its notices stay owed."""


@dataclass
class Outcome:
    changes: list[Change]
    told: list[Told]
    held: list[Notice]  # quiet hours: owed again at the next evaluation
    firing: int
    deliveries: dict[str, int] = field(default_factory=lambda: {PENDING: 0, SENT: 0, FAILED: 0})
    errors: list[str] = field(default_factory=list)  # one line per failed delivery attempt


# The columns of an open inquiry the reply rules read.
INQUIRY_COLUMNS = ("source", "channel", "conversation", "opened_at", "due_at")
# Keys looked up in one statement (well under any database's limit on parameters).
KEYS_AT_ONCE = 500


def load_inputs(
    conn: Connection,
    settings: Settings,
    now: datetime,
    firing_wide: Collection[tuple[str, str]] = (),
) -> AlertInputs:
    """The rows and counts the rules read at `now`. `firing_wide`: the (rule, source) pairs
    whose source-wide alert fires (alert_rules.flooded). The open backlog is counted by its
    tallies and indexes (monitor.store.backlog), and only the inquiries alerted on one by one
    are read: those due by now + the source's margin, of the sources not flooded."""
    names = [s.name for s in settings.sources if s.enabled]
    since = now - settings.file.alerts.long_holds_window - LONGEST_STAY

    def rows(query: Any) -> list[Mapping[Any, Any]]:
        return list(conn.execute(query).mappings().all())

    margins = {
        s.name: due_soon_margin(settings, settings.targets_for(s))
        for s in settings.sources
        if s.enabled
    }
    counts: dict[tuple[str, str], int] = defaultdict(int)
    backlog = open_counts(conn, now, names)
    groups = sorted(backlog)
    for (source, channel), found in backlog.items():
        counts[("reply_overdue", source)] += found.breached
        if found.next_due_at is not None and found.next_due_at <= now + margins[source]:
            counts[("reply_due_soon", source)] += due_count(
                conn, (source, channel), now, now + margins[source]
            )
    floods = flooded(counts, firing_wide)
    inquiries = []
    columns = [INQUIRIES.c[name] for name in INQUIRY_COLUMNS]
    for source, channel in groups:
        if ("reply_overdue", source) in floods:
            continue  # nor due soon: see alert_rules.flooded
        if ("reply_due_soon", source) in floods:
            inquiries += due_by(conn, [(source, channel)], now, columns, inclusive=False)
        else:
            inquiries += due_by(conn, [(source, channel)], now + margins[source], columns)
    return AlertInputs(
        waiting=rows(select(CALLS).where(WAITING_CALL, CALLS.c.source.in_(names))),
        recent_calls=rows(
            select(CALLS).where(
                CALLS.c.source.in_(names),
                CALLS.c.entered_at >= since,
                CALLS.c.outcome != "waiting",
            )
        ),
        open_inquiries=inquiries,
        source_states=rows(select(STATES).where(STATES.c.source.in_(names))),
        inquiry_counts=dict(counts),
        flooded=floods,
    )


def load_states(
    conn: Connection,
    keys: Collection[Key] = (),
    absorbed: Collection[tuple[str, str]] = (),
) -> dict[Key, State]:
    """The stored states that can change or owe a notice: every firing one (ix_alert_firing),
    every one back to ok whose end is still to be told, the critical twins of those (a
    warning's notices may be covered by its twin), and those of `keys` (the subjects the rules
    find now, which may have fired before). Not those a source-wide alert absorbs
    (`absorbed`: (rule, source) pairs; apply_changes deletes them). What stays ok and told is
    not read: a backlog's tens of thousands of subjects cost nothing while nothing changes."""
    a = ALERT_STATES.c
    found: dict[Key, State] = {}

    def add(query: Any) -> None:
        for row in conn.execute(query).mappings():
            state = State.from_row(row)
            found[state.key] = state

    for rule in RULES:
        query = select(ALERT_STATES).where(FIRING_ALERT, a.rule == rule)
        taken = sorted(source for r, source in absorbed if r == rule)
        if taken:
            # The source-wide state itself stays (its subject is its source's name).
            query = query.where(
                or_(a.source.not_in(taken), a.source.is_(None), a.subject == a.source)
            )
        add(query)
    add(
        select(ALERT_STATES).where(
            a.state == OK,
            a.last_notified_at >= a.started_at,
            a.last_notified_at < a.resolved_at,
        )
    )
    twins = {
        (RULES[s.rule].superseded_by or "", s.subject)
        for s in found.values()
        if s.rule in RULES and RULES[s.rule].superseded_by
    }
    found.update(states_of(conn, (set(keys) | twins) - found.keys()))
    return found


def states_of(conn: Connection, keys: Collection[Key]) -> dict[Key, State]:
    """The stored states of `keys` (those stored): seeks on the (rule, subject) key."""
    by_rule: dict[str, list[str]] = defaultdict(list)
    for rule, subject in sorted(keys):
        by_rule[rule].append(subject)
    found = {}
    for rule, subjects in sorted(by_rule.items()):
        for start in range(0, len(subjects), KEYS_AT_ONCE):
            part = subjects[start : start + KEYS_AT_ONCE]
            query = select(ALERT_STATES).where(
                ALERT_STATES.c.rule == rule, ALERT_STATES.c.subject.in_(part)
            )
            for row in conn.execute(query).mappings():
                state = State.from_row(row)
                found[state.key] = state
    return found


def observe(
    engine: Engine, settings: Settings, now: datetime, started_at: datetime | None = None
) -> tuple[dict[Key, State], list[Change]]:
    """The stored states and the changes the rules call for at `now` (reads only). With
    `started_at` (the service's start), the sources not read since keep their alerts' states
    (monitor.publish.alerts.state.diff)."""
    names = [s.name for s in settings.sources if s.enabled]
    with transaction(engine) as conn:
        wide = states_of(conn, [(rule, name) for rule in INQUIRY_RULES for name in names])
        firing_wide = {k for k, s in wide.items() if s.state == FIRING and is_source_wide(*k)}
        inputs = load_inputs(conn, settings, now, firing_wide)
        findings = evaluate(inputs, now, settings)
        keys = [(f.rule, f.subject) for f in findings]
        states = load_states(conn, keys, inputs.flooded)
    unread: set[str] = set()
    if started_at is not None:
        health = health_from_rows(inputs.source_states, settings, now)
        unread = {h.source for h in unread_since(health, started_at)}
    return states, diff(states, findings, unread)


def _same(state: State, *columns: str) -> list[Any]:
    """WHERE clauses: the row still holds the values we decided on (compare-and-set)."""
    clauses: list[Any] = [ALERT_STATES.c.id == state.id]
    for column in columns:
        clauses.append(ALERT_STATES.c[column].is_not_distinct_from(getattr(state, column)))
    return clauses


# Still firing with another severity or threshold (the targets changed): one statement for
# many rows (executemany). A state still firing as it was is not written at all: a backlog of
# open inquiries keeps tens of thousands firing, and rewriting each one's age every minute
# cost seconds of every evaluation. So a firing row's `value` and `evaluated_at` are those of
# its last write; the notices take the current value from the evaluation (`current`).
_KEEP = (
    update(ALERT_STATES)
    .where(
        ALERT_STATES.c.id == bindparam("k_id"),
        ALERT_STATES.c.state == FIRING,
        ALERT_STATES.c.started_at == bindparam("k_started", type_=ALERT_STATES.c.started_at.type),
    )
    .values(
        value=bindparam("k_value"),
        threshold=bindparam("k_threshold"),
        severity=bindparam("k_severity"),
        evaluated_at=bindparam("k_at", type_=ALERT_STATES.c.evaluated_at.type),
    )
)


def apply_changes(engine: Engine, changes: list[Change], now: datetime) -> int:
    """Write the transitions; a change another instance already made is skipped. Returns how
    many transitions this call made."""
    made = 0
    keeps: list[dict[str, Any]] = []
    with transaction(engine) as conn:
        # In key order, keeps batched between transitions: concurrent writers lock rows in one
        # order, so they cannot deadlock.
        for change in changes:
            new = after_change(change, now)
            if change.kind == "keep":
                old = change.old
                if old is not None and (old.severity, old.threshold) == (
                    new.severity,
                    new.threshold,
                ):
                    continue  # nothing but its age moved: not written
                keeps.append(
                    {
                        "k_id": new.id,
                        "k_started": new.started_at,
                        "k_value": new.value,
                        "k_threshold": new.threshold,
                        "k_severity": new.severity,
                        "k_at": now,
                    }
                )
                continue
            if keeps:
                conn.execute(_KEEP, keeps)
                keeps = []
            made += _transition(conn, change, new)
        if keeps:
            conn.execute(_KEEP, keeps)
    absorb(engine, changes)
    # Its own transaction: deleting rows in whatever order the database picks, inside the one
    # above, could deadlock with another instance updating them in key order.
    with transaction(engine) as conn:
        conn.execute(
            delete(ALERT_STATES).where(
                ALERT_STATES.c.state == OK, ALERT_STATES.c.resolved_at < now - PRUNE_AFTER
            )
        )
    return made


def absorb(engine: Engine, changes: list[Change]) -> None:
    """Delete the firing one-inquiry alerts of each source whose source-wide alert fires or
    keeps firing in `changes` (for `reply_overdue`, its due-soon ones too: alert_rules.flooded):
    the source's alert tells of them now, so they end untold (not "resolved": they are still
    open), and a flood leaves one row, not one per inquiry. Their own transaction (see the
    pruning in apply_changes); nothing is left to do once they are gone, so it costs a seek."""
    wide = sorted(
        change.key for change in changes if change.kind != "resolve" and is_source_wide(*change.key)
    )
    if not wide:
        return
    a = ALERT_STATES.c
    with transaction(engine) as conn:
        for rule, source in wide:
            rules = INQUIRY_RULES if rule == "reply_overdue" else (rule,)
            conn.execute(
                delete(ALERT_STATES).where(
                    FIRING_ALERT, a.rule.in_(rules), a.source == source, a.subject != source
                )
            )


def current(states: dict[Key, State], changes: list[Change], now: datetime) -> dict[Key, State]:
    """The stored `states` with the figures of this evaluation: a state that keeps firing in
    the same episode is not rewritten (apply_changes), so its value (an age, a wait) is taken
    from the finding, for the notices that repeat it."""
    for change in changes:
        stored = states.get(change.key)
        if change.kind != "keep" or change.finding is None or stored is None:
            continue
        if stored.state == FIRING and change.old and stored.started_at == change.old.started_at:
            states[change.key] = replace(stored, value=change.finding.value, evaluated_at=now)
    return states


def _transition(conn: Connection, change: Change, new: State) -> bool:
    values = {
        name: getattr(new, name)
        for name in State.__dataclass_fields__
        if name not in ("id", "rule", "subject")
    }
    if change.old is None:
        inserted = conn.execute(
            insert_ignore(conn, ALERT_STATES, ["rule", "subject"]).returning(ALERT_STATES.c.id),
            {"rule": new.rule, "subject": new.subject, **values},
        ).first()
        return inserted is not None
    guard = _same(change.old, "state", "started_at")
    return bool(conn.execute(update(ALERT_STATES).where(*guard).values(**values)).rowcount)


def lookup(conn: Connection, state: State) -> Mapping[Any, Any] | None:
    """The row a state's subject refers to, for the notice's details."""
    source, key = split_subject(state.subject)
    if state.rule in CALL_RULES:
        query = select(CALLS).where(CALLS.c.source == source, CALLS.c.external_id == key)
    elif is_source_wide(state.rule, state.subject):
        return flood_detail(conn, state)
    elif state.rule in INQUIRY_RULES:
        # The inquiry that fired: the latest opened before the alert started (a later follow-up
        # in the same conversation is another episode). Chosen here, not by ORDER BY opened_at,
        # which SQLite answers by walking the source's whole (source, opened_at) index.
        query = select(INQUIRIES).where(
            INQUIRIES.c.source == source, INQUIRIES.c.conversation == key
        )
        rows = conn.execute(query).mappings().all()
        started = state.started_at
        before = [r for r in rows if started is None or r["opened_at"] <= started] or list(rows)
        return max(before, key=lambda r: r["opened_at"], default=None)
    elif state.rule == "source_stale":
        query = select(STATES).where(STATES.c.source == state.subject)
    else:
        return None
    return conn.execute(query).mappings().first()


# The inquiries a source-wide alert names: the oldest open (overdue), the soonest due.
FLOOD_LISTED = 10


def flood_detail(conn: Connection, state: State) -> Mapping[Any, Any]:
    """What a source-wide alert names: a few of its inquiries, read by index (not the backlog:
    monitor.store.backlog). `evaluated_at` is the evaluation's time (current)."""
    groups = open_groups(conn, [state.subject])
    if state.rule == "reply_overdue":
        found = oldest_open(conn, groups, FLOOD_LISTED)
        found = sorted(found, key=lambda r: (r["opened_at"], r["channel"], r["conversation"]))
    else:
        found = due_by(conn, groups, None, since=state.evaluated_at, limit=FLOOD_LISTED)
        found = sorted(found, key=lambda r: (r["due_at"], r["channel"], r["conversation"]))
    return {"inquiries": found[:FLOOD_LISTED]}


def recipients(settings: Settings) -> list[str]:
    return [
        notifier_for(settings, i, n.kind).describe()
        for i, n in enumerate(settings.file.alerts.notify)
    ]


def versions(
    conn: Connection, settings: Settings, notices: list[Notice], now: datetime, key: bytes
) -> tuple[dict[str, Any], list[Sent]]:
    """A group of notices as the support team reads it (customers named), and as each
    notifier gets it (without its delivery's Message-ID yet)."""
    details = [lookup(conn, n.state) for n in notices]

    def body(private: bytes | None) -> dict[str, Any]:
        bodies = [
            build(n, d, now, settings, private) for n, d in zip(notices, details, strict=True)
        ]
        return combine(notices, bodies, now)

    named = body(None)
    private: dict[str, Any] | None = None
    sends = []
    to = recipients(settings)
    for index, notify in enumerate(settings.file.alerts.notify):
        if not notify.names_customers() and private is None:
            private = body(key)
        chosen = named if notify.names_customers() else private
        assert chosen is not None
        sends.append(Sent(index, notify.kind, to[index], chosen))
    return named, sends


def claim_notices(engine: Engine, settings: Settings, plan: Plan, now: datetime) -> list[Told]:
    """Claim the notices of `plan.send` that no one else has, a notification per group, and
    mark `plan.covered` done."""
    told = []
    to = recipients(settings)
    smtp = settings.file.smtp
    for members in group(plan.send):
        try:
            with transaction(engine) as conn:
                taken = [notice for notice in members if _take(conn, notice, now)]
                if not taken:
                    continue
                installation = installation_key(conn)
                team, sends = versions(conn, settings, taken, now, installation)
                claimed = []
                for sent in sends:
                    key = group_key(taken, now, sent.notify)
                    payload: dict[str, Any] = {"notify": sent.notify, "notice": sent.body}
                    if sent.kind == "email" and smtp is not None:
                        sent = replace(
                            sent, message_id=message_id_for(key, installation, smtp.sender)
                        )
                        payload["message_id"] = sent.message_id
                    if not claim(
                        conn,
                        key=key,
                        purpose="alert",
                        notifier=sent.kind,
                        payload=payload,
                        now=now,
                    ):
                        raise _KeyTaken(key)
                    claimed.append(sent)
        except _KeyTaken as exc:  # cannot happen while the guards hold; never drop a notice
            logger.error("alert notification %s already claimed; its notices stay owed", exc)
            continue
        told.append(Told(taken, team, to, claimed))
        # Not the summary: it may quote an inquiry's subject, and logs get no message contents.
        first = taken[0].state
        what = first.subject if len(taken) == 1 else f"{len(taken)} subjects"
        logger.info("alert %s: %s %s %s", taken[0].event, first.rule, first.severity, what)
    if plan.covered:
        with transaction(engine) as conn:
            for notice in sorted(plan.covered, key=lambda n: n.state.key):
                _take(conn, notice, now)
    return told


def _take(conn: Connection, notice: Notice, now: datetime) -> bool:
    """Mark `notice` told unless someone already has (the guard on `last_notified_at`)."""
    taken = conn.execute(
        update(ALERT_STATES)
        .where(*_same(notice.state, "state", "started_at", "last_notified_at"))
        .values(last_notified_at=_told_at(notice, now))
    )
    return bool(taken.rowcount)


def _told_at(notice: Notice, now: datetime) -> datetime:
    """When `notice` counts as told: `now`, but never before the moment it tells of. Instances'
    clocks differ by a little: an alert started by one instance at 12:14:00.1 and told by another
    at 12:14:00 would otherwise look untold (told before it started) and be sent again."""
    state = notice.state
    moments = [now, state.started_at]
    if notice.event == "resolved":
        moments.append(state.resolved_at)
    return max(m for m in moments if m is not None)


def send_due(engine: Engine, settings: Settings, now: datetime) -> tuple[dict[str, int], list[str]]:
    """Attempt every alert notification that is due (new ones and retries); the counts by new
    status and one line per failed attempt."""

    def send(delivery: Pending) -> None:
        payload = delivery.payload
        notifier = notifier_for(settings, int(payload["notify"]), delivery.notifier)
        notifier.send(payload["notice"], message_id=payload.get("message_id"))

    def failed(delivery: Pending, error: DeliveryError, status: str) -> None:
        what = "failed for good" if status == FAILED else "will be retried"
        errors.append(f"{delivery.key}: {error} ({what})")
        logger.warning("alert notification %s: %s (%s)", delivery.key, error, what)

    errors: list[str] = []
    return deliver_due(engine, now, send, purpose="alert", on_error=failed), errors


def run_once(
    engine: Engine,
    settings: Settings,
    now: datetime,
    *,
    dry_run: bool = False,
    started_at: datetime | None = None,
) -> Outcome:
    """Evaluate every rule at `now`, record transitions, claim and send the notices owed.
    `started_at`: the service's start (see `observe`)."""
    states, changes = observe(engine, settings, now, started_at)
    if dry_run:
        after = advance(states, changes, now)
        plan = notices(after, now, settings)
        told = []
        with transaction(engine) as conn:
            installation = installation_key(conn)
            for members in group(plan.send):
                team, sends = versions(conn, settings, members, now, installation)
                told.append(Told(members, team, recipients(settings), sends))
        return Outcome(changes, told, plan.held, _firing(after))
    apply_changes(engine, changes, now)
    with transaction(engine) as conn:
        states = current(load_states(conn), changes, now)
    plan = notices(states, now, settings)
    told = claim_notices(engine, settings, plan, now)
    outcome = Outcome(changes, told, plan.held, _firing(states))
    outcome.deliveries, outcome.errors = send_due(engine, settings, now)
    return outcome


def summaries(
    engine: Engine, settings: Settings, changes: list[Change], now: datetime
) -> list[str]:
    """What each transition of `changes` (but those that keep firing) means, in the words of
    its notice, as the support team reads it: for the `alerts` command, which shows people
    what changed rather than internal ids."""
    said = []
    with transaction(engine) as conn:
        for change in changes:
            if change.kind == "keep":
                continue
            state = after_change(change, now)
            notice = Notice("resolved" if change.kind == "resolve" else "firing", state)
            said.append(build(notice, lookup(conn, state), now, settings)["summary"])
    return said


def _firing(states: Mapping[Key, State]) -> int:
    return sum(1 for s in states.values() if s.state == FIRING)
