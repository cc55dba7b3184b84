"""Test mail: RFC 5322 messages built with `email`, and fresh Dovecot mailboxes seeded over IMAP
APPEND with explicit INTERNALDATEs (the arrival times the connector measures inbound mail by)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from servers import DovecotServer

CUSTOMER = "dana@customer.test"
AGENT = "support@example.com"
AGENTS = {"addresses": [AGENT], "domains": ["example.com"]}


def message(
    message_id: str | None,
    *,
    sender: str = CUSTOMER,
    to: Sequence[str] = (AGENT,),
    subject: str = "Order 1042",
    date: datetime | None = None,
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
    headers: dict[str, str] | None = None,
    body: str = "Hello,\n\nA message body that is never read.\n",
) -> bytes:
    """One message as bytes. `message_id` without angle brackets; None: no Message-ID."""
    msg = EmailMessage()
    if sender:
        msg["From"] = sender
    if to:
        msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    if date is not None:
        msg["Date"] = format_datetime(date)
    if message_id is not None:
        msg["Message-ID"] = f"<{message_id}>"
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
    if references:
        msg["References"] = " ".join(f"<{r}>" for r in references)
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    return bytes(msg)


@dataclass
class Mailbox:
    """A fresh user on the session's Dovecot (empty INBOX and Sent)."""

    server: DovecotServer
    user: str
    appended: dict[str, int] = field(default_factory=dict)

    def append(self, folder: str, messages: Iterable[tuple[bytes, datetime]]) -> None:
        """APPEND `(message, INTERNALDATE)` pairs to `folder` (MULTIAPPEND, 500 at a time)."""
        batch = [{"msg": raw, "date": at.astimezone(UTC)} for raw, at in messages]
        client = self.server.connect(self.user)
        try:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            for start in range(0, len(batch), 500):
                client.multiappend(folder, batch[start : start + 500])
        finally:
            client.logout()
        self.appended[folder] = self.appended.get(folder, 0) + len(batch)

    def source(self, name: str = "inbox", **extra: Any) -> dict[str, Any]:
        """An `imap` source entry reading this mailbox over verified TLS."""
        return {
            "name": name,
            "kind": "imap",
            "host": self.server.host,
            "port": self.server.port,
            "security": "tls",
            "username": self.user,
            "password": self.server.password,
            "ca_file": str(self.server.ca_file),
            **extra,
        }

    def flags(self, folder: str = "INBOX") -> dict[int, tuple[bytes, ...]]:
        client = self.server.connect(self.user)
        try:
            client.select_folder(folder, readonly=True)
            uids = client.search(["ALL"])
            return {uid: v[b"FLAGS"] for uid, v in client.fetch(uids, ["FLAGS"]).items()}
        finally:
            client.logout()


def maildir_root(server: DovecotServer, user: str) -> Path:
    return server.maildir(user)
