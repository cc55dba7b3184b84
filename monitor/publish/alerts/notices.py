"""What an alert notification says: one JSON-able dict per notice, built when it is claimed.

The same dict is the webhook's body and the e-mail templates' input, and it is stored in the
delivery row, so a retry sends exactly what was claimed. For e-mail (and a webhook with
`include_customer: true`) it names what a support lead needs to act (the caller's number, the
inquiry's subject) and nothing more of the customer's: no message text, no e-mail addresses.
A webhook gets the *private* notice: no caller, name or inquiry subject anywhere in it, and
subjects as opaque ids (`opaque_subject`), stable across instances and restarts.
Times are ISO 8601 UTC in the fields and local (`timezone`) in text.
Every string in it is one printable line (monitor.publish.printable): a subject or a caller id
written by an outsider cannot forge a line of a chat message or reach a terminal as an escape
sequence.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from monitor.config import Settings
from monitor.publish.alerts.rules import (
    INQUIRY_RULES,
    PER_INQUIRY,
    due_soon_margin,
    is_source_wide,
    split_subject,
)
from monitor.publish.alerts.state import Notice
from monitor.publish.printable import strings
from monitor.publish.words import duration_text
from monitor.store.installation import opaque

Row = Mapping[Any, Any]
CALL_RULES = ("hold_warn", "hold_max")
# The rules whose subject is one customer (a caller, an inquiry): opaque in private notices.
CUSTOMER_RULES = CALL_RULES + INQUIRY_RULES
PHONE_CHANNELS = ("voicemail", "answering_service", "phone")
CHANNEL_NAMES = {"email": "e-mail", "answering_service": "answering-service"}


def iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat().replace("+00:00", "Z")


def local(at: datetime | None, settings: Settings) -> str:
    return "-" if at is None else at.astimezone(settings.timezone).strftime("%Y-%m-%d %H:%M %Z")


def slack_escape(text: str) -> str:
    """Slack's three control characters, so a customer's subject cannot @-mention a channel."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def label(notice: Notice) -> str:
    if notice.event == "resolved":
        return "RESOLVED"
    severity = notice.state.severity.upper()
    return f"{severity}, still firing" if notice.event == "repeat" else severity


def opaque_subject(subject: str, key: bytes) -> str:
    """A subject that names no customer: `<source>/<keyed hash of the rest>` (source names come
    from the configuration). The same on every instance and after restarts; without the
    installation's key (monitor.store.installation) it cannot be turned back into a caller's
    number or an address, not even by hashing every number there is."""
    source, _ = split_subject(subject)
    return f"{source}/{opaque(key, subject)}"


def build(
    notice: Notice,
    detail: Row | None,
    now: datetime,
    settings: Settings,
    private: bytes | None = None,
) -> dict[str, Any]:
    """The notice as sent. `detail` is the row the subject refers to (the call, the inquiry,
    the source's state; None for long_holds or when it is gone).

    With `private` (the installation's key), the notice names no customer, for receivers
    outside the support team (a webhook without `include_customer`): a caller's or
    inquiry's subject becomes an opaque id, and no caller number, name or inquiry subject is
    in the summary, the details or the text."""
    state = notice.state
    wide = is_source_wide(state.rule, state.subject)
    if wide:
        summary, details, value = _flood(notice, detail, now, settings, private)
    else:
        summary, details, value = _describe(notice, detail, settings, private is not None)
    subject = state.subject
    if private is not None and state.rule in CUSTOMER_RULES and not wide:
        subject = opaque_subject(subject, private)
    body = {
        "rule": state.rule,
        "severity": state.severity,
        "status": "resolved" if notice.event == "resolved" else "firing",
        "repeat": notice.event == "repeat",
        "source": state.source,
        "subject": subject,
        "value": value,
        "threshold": state.threshold,
        "unit": "inquiries" if wide else "ratio" if state.rule == "long_holds" else "seconds",
        "started_at": iso(state.started_at),
        "resolved_at": iso(state.resolved_at) if notice.event == "resolved" else None,
        "notified_at": iso(now),
        "summary": summary,
        "details": details,
    }
    # Slack, Mattermost and Rocket.Chat incoming webhooks post `text` and ignore the rest.
    body["text"] = f"[{label(notice)}] {slack_escape(summary)}"
    printable: dict[str, Any] = strings(body)
    return printable


def _describe(
    notice: Notice, detail: Row | None, settings: Settings, private: bool
) -> tuple[str, dict[str, Any], float | None]:
    state = notice.state
    if state.rule in CALL_RULES:
        return _call(notice, detail, private)
    if state.rule in INQUIRY_RULES:
        return _inquiry(notice, detail, settings, private)
    if state.rule == "source_stale":
        return _stale(notice, detail, settings)
    if state.rule == "long_holds":
        return _long_holds(notice, settings)
    return f"{state.rule} {notice.event} for {state.subject}", {}, state.value


def _call(
    notice: Notice, call: Row | None, private: bool
) -> tuple[str, dict[str, Any], float | None]:
    state = notice.state
    source, _ = split_subject(state.subject)
    queue = call["queue"] if call else None
    caller = call["caller"] if call and not private else None
    who = f"Caller {caller}" if caller else "A caller"
    where = f"{source}/{queue}" if queue else source
    details: dict[str, Any] = {"queue": queue}
    if not private:
        details["caller"] = caller
    details["entered_at"] = iso(call["entered_at"]) if call else None
    if notice.event != "resolved":
        limit = duration_text(state.threshold)
        text = f"{who} has waited {duration_text(state.value)} in {where} ({state.rule} {limit})"
        return text, details, state.value
    outcome = call["outcome"] if call else None
    wait = call["wait_seconds"] if call and call["wait_seconds"] is not None else None
    details.update(outcome=outcome, wait_seconds=wait)
    after = f"after {duration_text(wait)}" if wait is not None else ""
    if outcome in ("answered", "transferred"):
        return f"{who} in {where} was answered {after}".rstrip(), details, wait
    if outcome == "abandoned":
        return f"{who} in {where} hung up {after}".rstrip(), details, wait
    if outcome is None or outcome == "waiting":
        return f"{who} in {where} is no longer over {state.rule}", details, state.value
    return f"{who} in {where} left the queue ({outcome}) {after}".rstrip(), details, wait


def _inquiry(
    notice: Notice, inquiry: Row | None, settings: Settings, private: bool
) -> tuple[str, dict[str, Any], float | None]:
    state = notice.state
    source, _ = split_subject(state.subject)
    channel = inquiry["channel"] if inquiry else None
    phone = channel in PHONE_CHANNELS
    caller = inquiry["customer"] if inquiry and phone and not private else None
    subject = inquiry["subject"] if inquiry and not private else None
    what = " ".join(
        part
        for part in (
            f"{CHANNEL_NAMES.get(channel or '', channel or 'An')} inquiry".capitalize(),
            f'"{subject}"' if subject else "",
            f"from {caller}" if caller else "",
            f"in {source}",
        )
        if part
    )
    details: dict[str, Any] = {"channel": channel}
    if not private:
        details |= {"inquiry_subject": subject, "caller": caller}
    details |= {
        "opened_at": iso(inquiry["opened_at"]) if inquiry else None,
        "due_at": iso(inquiry["due_at"]) if inquiry else None,
        "status": inquiry["status"] if inquiry else None,
    }
    due = local(inquiry["due_at"], settings) if inquiry else "-"
    if notice.event != "resolved":
        if state.rule == "reply_due_soon":
            text = f"{what} breaches its reply target in {duration_text(state.value)} ({due})"
        else:
            text = (
                f"{what} is past its reply target: open {duration_text(state.value)} "
                f"(target {duration_text(state.threshold)})"
            )
        return text, details, state.value
    status = inquiry["status"] if inquiry else None
    if status == "answered":
        response = inquiry["response_seconds"] if inquiry else None
        details["response_seconds"] = response
        return f"{what} was answered after {duration_text(response)}", details, response
    if status == "missed":
        return f"{what} ended with no reply", details, state.value
    return f"{what} is no longer {state.rule.replace('reply_', '')}", details, state.value


def _flood(
    notice: Notice, detail: Row | None, now: datetime, settings: Settings, private: bytes | None
) -> tuple[str, dict[str, Any], float | None]:
    """A source-wide reply alert (a flood: monitor.publish.alerts.rules): how many, the oldest
    open (or the soonest due), and the first few of them (`detail["inquiries"]`), as each
    inquiry's own notice would name them (opaque and without names when `private`)."""
    state = notice.state
    source = state.subject
    count = int(state.value or 0)
    overdue = state.rule == "reply_overdue"
    rows = list(detail["inquiries"]) if detail else []
    listed = []
    for row in rows:
        phone = row["channel"] in PHONE_CHANNELS
        subject = f"{row['source']}/{row['conversation']}"
        item: dict[str, Any] = {
            "subject": opaque_subject(subject, private) if private is not None else subject,
            "channel": row["channel"],
            "opened_at": iso(row["opened_at"]),
            "due_at": iso(row["due_at"]),
        }
        if private is None:
            item["inquiry_subject"] = row["subject"]
            item["caller"] = row["customer"] if phone else None
        listed.append(item)
    details: dict[str, Any] = {"count": count, "per_inquiry_limit": PER_INQUIRY}
    what = "past their reply target" if overdue else "due soon"
    if notice.event == "resolved":
        details["inquiries"] = []
        text = f"Inquiries {what} in {source} are down to {PER_INQUIRY // 2} or fewer"
        return text, details, None
    details["inquiries"] = listed
    if overdue:
        first = rows[0]["opened_at"] if rows else None
        oldest = (
            f"; the oldest open {duration_text((now - first).total_seconds())}" if first else ""
        )
        text = f"{count:,} inquiries in {source} are past their reply target{oldest}"
    else:
        source_settings = next(s for s in settings.sources if s.name == source)
        margin = due_soon_margin(settings, settings.targets_for(source_settings))
        first = rows[0]["due_at"] if rows else None
        soonest = f"; the next in {duration_text((first - now).total_seconds())}" if first else ""
        text = (
            f"{count:,} inquiries in {source} breach their reply target within "
            f"{duration_text(margin.total_seconds())}{soonest}"
        )
    return f"{text} (one alert for all beyond {PER_INQUIRY})", details, count


def _stale(
    notice: Notice, row: Row | None, settings: Settings
) -> tuple[str, dict[str, Any], float | None]:
    state = notice.state
    last = row["last_success_at"] if row else None
    details: dict[str, Any] = {
        "last_success_at": iso(last),
        "consecutive_failures": row["consecutive_failures"] if row else None,
        "last_error": row["last_error"] if row else None,
    }
    if notice.event == "resolved":
        return f"Source {state.subject} is read again ({local(last, settings)})", details, None
    if state.value is None:
        failures = details["consecutive_failures"]
        return (
            f"Source {state.subject} has never been read successfully ({failures} failed polls)",
            details,
            None,
        )
    return (
        f"Source {state.subject} has not been read for {duration_text(state.value)} "
        f"(stale after {duration_text(state.threshold)})",
        details,
        state.value,
    )


def _long_holds(notice: Notice, settings: Settings) -> tuple[str, dict[str, Any], float | None]:
    state = notice.state
    source, queue = split_subject(state.subject)
    alerts = settings.file.alerts
    window = duration_text(alerts.long_holds_window.total_seconds())
    details = {"queue": queue, "window_seconds": alerts.long_holds_window.total_seconds()}
    ratio = f"{(state.threshold or 0) * 100:.0f}%"
    if notice.event == "resolved":
        return f"Long holds in {state.subject} are back under {ratio}", details, state.value
    share = f"{(state.value or 0) * 100:.0f}%"
    return (
        f"{share} of the calls in {source}/{queue} in the last {window} waited longer than "
        f"hold_warn (alert over {ratio})",
        details,
        state.value,
    )
