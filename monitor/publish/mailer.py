"""Sending e-mail over SMTP with verified TLS (the digest and e-mail alerts share it)."""

from __future__ import annotations

import re
import smtplib
import ssl
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from pathlib import Path

from monitor.config import SmtpSettings, read_secret
from monitor.deadlines import Deadline, timed_out
from monitor.publish.deliveries import DeliveryError
from monitor.store.installation import opaque


@contextmanager
def connect(smtp: SmtpSettings, base_dir: Path) -> Iterator[smtplib.SMTP]:
    """An SMTP session, secured as configured (certificates verified) and logged in.

    The whole session, from connecting to QUIT, ends within `smtp.timeout` however slowly the
    server answers (monitor.deadlines): past it, TimeoutError."""
    context = ssl.create_default_context(
        cafile=str(base_dir / smtp.ca_file) if smtp.ca_file else None
    )
    timeout = smtp.timeout.total_seconds()
    client: smtplib.SMTP
    if smtp.security == "tls":
        client = smtplib.SMTP_SSL(timeout=timeout, context=context)
    else:
        client = smtplib.SMTP(timeout=timeout)
    # smtplib checks the server's certificate (TLS, STARTTLS) against the host its constructor
    # was given, and a constructor given a host connects at once, before the deadline could
    # watch the socket: so the host is set where the constructor would have kept it.
    vars(client)["_host"] = smtp.host
    deadline = Deadline(timeout, lambda: client.sock)
    try:
        with deadline:
            client.connect(smtp.host, smtp.port)
            with client:
                client.ehlo()
                if smtp.security == "starttls":
                    client.starttls(context=context)
                    client.ehlo()
                password = read_secret(smtp.password, smtp.password_file, base_dir)
                if smtp.username and password:
                    client.login(smtp.username, password)
                yield client
        if deadline.expired:  # cut short, an answer can look whole: it is not one
            raise TimeoutError(timed_out(timeout))
    except (OSError, smtplib.SMTPException) as exc:
        if deadline.expired:
            raise TimeoutError(timed_out(timeout)) from exc
        raise
    finally:
        client.close()


def send(smtp: SmtpSettings, base_dir: Path, message: EmailMessage) -> None:
    """Send one message; raise DeliveryError (permanent for 5xx answers and bad credentials,
    transient for network trouble and 4xx answers, which SMTP defines as "try again")."""
    where = f"smtp {smtp.host}:{smtp.port}"
    try:
        with connect(smtp, base_dir) as client:
            refused = client.send_message(message)
    except smtplib.SMTPAuthenticationError as exc:
        raise DeliveryError(
            f"{where}: authentication failed ({exc.smtp_code})", permanent=True
        ) from None
    except smtplib.SMTPRecipientsRefused as exc:
        codes = sorted({code for code, _ in exc.recipients.values()})
        permanent = all(code >= 500 for code in codes)
        raise DeliveryError(
            f"{where}: every recipient refused {codes}", permanent=permanent
        ) from None
    except smtplib.SMTPResponseException as exc:
        raise DeliveryError(
            f"{where}: {exc.smtp_code} {_text(exc.smtp_error)[:200]}",
            permanent=exc.smtp_code >= 500,
        ) from None
    except ssl.SSLCertVerificationError as exc:
        raise DeliveryError(f"{where}: certificate not trusted ({exc.verify_message})") from None
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(f"{where}: {exc or type(exc).__name__}") from None
    if refused:  # some recipients took it; the others are named so someone can fix them
        raise DeliveryError(f"{where}: refused {len(refused)} recipient(s)", permanent=True)


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def new_message_id(sender: str, idstring: str | None = None) -> str:
    """A Message-ID in the sender's domain (receivers score a foreign domain as spam)."""
    return make_msgid(idstring=idstring, domain=_domain(sender))


def message_id_for(delivery_key: str, installation: bytes, sender: str) -> str:
    """The Message-ID of the message claimed under `delivery_key`: the same on every instance
    and every attempt, so the one re-send that claim-then-send allows after a crash mid-send
    is merged by mail clients instead of arriving twice. The keyed hash makes it this
    installation's own (two monitors of one domain never share one), and says nothing of the
    key to a reader."""
    readable = re.sub(r"[^A-Za-z0-9.-]+", ".", delivery_key).strip(".")[:48]
    return f"<{readable}.{opaque(installation, delivery_key, 20)}@{_domain(sender)}>"


def _domain(sender: str) -> str:
    return parseaddr(sender)[1].rpartition("@")[2] or "support-monitor.invalid"


def compose(
    *,
    sender: str,
    to: Sequence[str],
    subject: str,
    text: str,
    html: str,
    date: str | None = None,
    message_id: str | None = None,
) -> EmailMessage:
    """A machine-made multipart/alternative message: plain text first, HTML preferred by the
    clients that show it. Its subject is folded to one line (a customer's subject may hold line
    breaks, which must never become headers)."""
    mail = EmailMessage()
    mail["Subject"] = " ".join(subject.split())
    mail["From"] = sender
    mail["To"] = ", ".join(to)
    mail["Date"] = date or formatdate(localtime=False)
    mail["Message-ID"] = message_id or new_message_id(sender)
    # RFC 3834: auto-responders stay quiet, and a monitored inbox receiving it does not count it
    # as a customer inquiry.
    mail["Auto-Submitted"] = "auto-generated"
    mail["X-Auto-Response-Suppress"] = "All"
    mail.set_content(text)
    mail.add_alternative(html, subtype="html")
    return mail
