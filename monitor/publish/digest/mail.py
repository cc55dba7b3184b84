"""The digest as an e-mail: rendered from the Jinja2 templates, claimed once per day, sent.

Templates are `templates/digest*` (monitor.publish.templating: `StrictUndefined`, so a misspelt
field fails instead of printing nothing; the HTML one is autoescaped, so a customer's name or
subject (`<script>`, `{{ … }}`) is only ever text).

Sending follows `monitor.publish.deliveries`: the digest of a day is *claimed* under the key
`digest:YYYY-MM-DD` with the whole rendered message as its payload, before anything is sent. Two
instances, a re-run or a retry therefore send that day's digest at most once, and a retry sends
exactly the message first built (the same figures and Message-ID). The Message-ID is made from
that key (monitor.publish.mailer.message_id_for), so even the one re-send a crash between
sending and recording allows carries the same one, and mail clients merge the two.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from sqlalchemy import Engine, select

from monitor.config import Settings
from monitor.publish import deliveries
from monitor.publish.deliveries import DeliveryError, Pending
from monitor.publish.digest.build import Digest, build_digest
from monitor.publish.mailer import compose, message_id_for, send
from monitor.publish.templating import render as template
from monitor.store.database import add_to_meta, transaction
from monitor.store.health import DIGESTS_INCOMPLETE
from monitor.store.installation import installation_key
from monitor.store.schema import DELIVERIES

logger = logging.getLogger(__name__)

PURPOSE = "digest"


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def render(digest: Digest) -> Rendered:
    subject = template("digest_subject.txt", d=digest)
    return Rendered(
        subject=" ".join(subject.split()),  # one header line, whatever the template's layout
        text=_tidy(template("digest.txt", d=digest)),
        html=template("digest.html", d=digest),
    )


def _tidy(text: str) -> str:
    """Plain text without the trailing blanks of padded columns."""
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"


def key(day: date) -> str:
    return f"{PURPOSE}:{day.isoformat()}"


def payload(
    settings: Settings,
    day: date,
    rendered: Rendered,
    now: datetime,
    installation: bytes,
    incomplete: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Everything needed to send the message, fixed at claim time."""
    digest = settings.file.digest
    smtp = settings.file.smtp
    sender = smtp.sender if smtp is not None else "support-monitor"
    return {
        "day": day.isoformat(),
        "from": sender,
        "to": list(digest.to) if digest is not None else [],
        "subject": rendered.subject,
        "text": rendered.text,
        "html": rendered.html,
        "date": format_datetime(now.astimezone(settings.timezone)),
        "message_id": message_id_for(key(day), installation, sender),
        "incomplete": list(incomplete),  # the sources whose figures were not all read
    }


def message(fields: dict[str, Any]) -> EmailMessage:
    return compose(
        sender=fields["from"],
        to=fields["to"],
        subject=fields["subject"],
        text=fields["text"],
        html=fields["html"],
        date=fields["date"],
        message_id=fields["message_id"],
    )


def is_claimed(engine: Engine, day: date) -> bool:
    with transaction(engine) as conn:
        found = conn.execute(select(DELIVERIES.c.id).where(DELIVERIES.c.key == key(day))).first()
    return found is not None


def claim_digest(
    engine: Engine,
    settings: Settings,
    day: date,
    now: datetime,
    *,
    read_after: datetime | None = None,
    read_after_words: str | None = None,
) -> bool:
    """Build and claim the digest of `day`; False when it was already claimed (by anyone).

    The claimed check first spares building a digest that is not needed; the unique key still
    decides when two instances build at the same moment. A source not read after `read_after`
    (by default the day's end) is named first and its figures marked incomplete; such a digest
    is counted (support_digests_incomplete_total) in the claim's own transaction."""
    if is_claimed(engine, day):
        return False
    top = settings.file.digest.top if settings.file.digest is not None else 10
    digest = build_digest(
        engine,
        settings,
        day,
        now,
        top,
        read_after=read_after,
        read_after_words=read_after_words,
    )
    rendered = render(digest)
    incomplete = tuple(u.source for u in digest.incomplete)
    with transaction(engine) as conn:
        fields = payload(settings, day, rendered, now, installation_key(conn), incomplete)
        claimed = deliveries.claim(
            conn, key=key(day), purpose=PURPOSE, notifier="email", payload=fields, now=now
        )
        if claimed and incomplete:
            add_to_meta(conn, DIGESTS_INCOMPLETE)
    if claimed:
        logger.info("digest %s claimed for %s", day, ", ".join(fields["to"]) or "nobody")
    return claimed


def attempt_lease(settings: Settings) -> timedelta:
    """How long one attempt at sending a digest holds it: twice the SMTP session's deadline
    (it cannot take longer; the rest is room for instances' clocks). A process killed while
    sending leaves it to be retried this soon after."""
    smtp = settings.file.smtp
    return 2 * smtp.timeout if smtp is not None else deliveries.ATTEMPT_LEASE


def sender(settings: Settings) -> Callable[[Pending], None]:
    """The `send` of `deliveries.deliver_due` for digests: one SMTP session per message, each
    failure logged in one line (the error is also stored with the attempt)."""

    def deliver(delivery: Pending) -> None:
        day = delivery.key.removeprefix(f"{PURPOSE}:")
        try:
            smtp = settings.file.smtp
            if smtp is None:
                raise DeliveryError("no `smtp:` section to send the digest with", permanent=True)
            if not delivery.payload.get("to"):
                raise DeliveryError("the digest has no recipients (digest.to)", permanent=True)
            send(smtp, settings.base_dir, message(delivery.payload))
        except DeliveryError as exc:
            if exc.permanent or delivery.attempts + 1 >= deliveries.MAX_ATTEMPTS:
                logger.error("digest %s not sent, giving up: %s", day, exc)
            else:
                logger.warning("digest %s not sent, will retry: %s", day, exc)
            raise
        logger.info("digest %s sent to %s", day, ", ".join(delivery.payload["to"]))

    return deliver


def deliver_digests(engine: Engine, settings: Settings, now: datetime) -> dict[str, int]:
    """Attempt every digest due to be sent: newly claimed ones and retries."""
    return deliveries.deliver_due(
        engine, now, sender(settings), purpose=PURPOSE, lease=attempt_lease(settings)
    )


@dataclass(frozen=True)
class Status:
    status: str  # pending | sent | failed
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    sent_at: datetime | None


def status(engine: Engine, day: date) -> Status | None:
    with transaction(engine) as conn:
        row = conn.execute(select(DELIVERIES).where(DELIVERIES.c.key == key(day))).first()
    if row is None:
        return None
    return Status(row.status, row.attempts, row.last_error, row.next_attempt_at, row.sent_at)
