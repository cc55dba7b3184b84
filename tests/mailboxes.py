"""Test mail: RFC 5322 messages built with `email`, and fresh Dovecot mailboxes seeded over IMAP
APPEND with explicit INTERNALDATEs (the arrival times the connector measures inbound mail by)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.header import Header
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from tests.servers import DovecotServer

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
    """One RFC 5322 message as bytes (CRLF), written directly: building thousands of messages
    with `EmailMessage` takes milliseconds each. `message_id` without angle brackets; None: no
    Message-ID. A non-ASCII subject is written as an RFC 2047 encoded word."""
    fields: dict[str, str] = {}
    if sender:
        fields["From"] = sender
    if to:
        fields["To"] = ", ".join(to)
    fields["Subject"] = subject if subject.isascii() else Header(subject, "utf-8").encode()
    if date is not None:
        fields["Date"] = format_datetime(date)
    if message_id is not None:
        fields["Message-ID"] = f"<{message_id}>"
    if in_reply_to:
        fields["In-Reply-To"] = f"<{in_reply_to}>"
    if references:
        fields["References"] = " ".join(f"<{r}>" for r in references)
    fields["MIME-Version"] = "1.0"
    fields["Content-Type"] = 'text/plain; charset="utf-8"'
    for name, value in (headers or {}).items():
        fields[name] = value
    head = "".join(f"{name}: {value}\r\n" for name, value in fields.items())
    return (head + "\r\n" + body.replace("\n", "\r\n")).encode("utf-8")


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


def mbox_entry(raw: bytes, arrived: datetime, *, offset: bool = True) -> bytes:
    """One mbox message: a `From ` line dated `arrived` (UTC, written with `+0000` as Google
    Takeout does, or without an offset), the message with `From ` lines quoted (mboxrd), and the
    empty line that ends it."""
    stamp = arrived.astimezone(UTC)
    date = stamp.strftime("%a %b %d %H:%M:%S ") + ("+0000 " if offset else "") + str(stamp.year)
    lines = raw.replace(b"\r\n", b"\n").split(b"\n")
    quoted = [b">" + line if line.lstrip(b">").startswith(b"From ") else line for line in lines]
    body = b"\n".join(quoted).rstrip(b"\n")
    return f"From MAILER-DAEMON {date}\n".encode() + body + b"\n\n"


def write_mbox(
    path: Path, messages: Iterable[tuple[bytes, datetime]], *, append: bool = False
) -> None:
    with path.open("ab" if append else "wb") as handle:
        for raw, arrived in messages:
            handle.write(mbox_entry(raw, arrived))


def deliver(folder: Path, raw: bytes, arrived: datetime, *, seq: int, new: bool = False) -> Path:
    """Drop one message into a Maildir folder as a delivery agent does: a unique name starting
    with the delivery time, in `new/` (unread) or `cur/` (with flags), mtime set to arrival."""
    for sub in ("cur", "new", "tmp"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    stamp = int(arrived.timestamp())
    name = f"{stamp}.M{seq}P4242.mx.test,S={len(raw)}" + ("" if new else ":2,S")
    path = folder / ("new" if new else "cur") / name
    path.write_bytes(raw)
    os.utime(path, (stamp, stamp))
    return path
