"""The `imap` connector: support mailboxes over IMAP, headers only, never changing a thing
(folders opened with EXAMINE, headers fetched with BODY.PEEK: nothing is marked read).

One session per poll (connectors.mail.imap_session: TLS, login, one-line errors). The folders are
read in this order: the sent folder first (`sent_folder: auto` finds the `\\Sent` special-use
folder), so a message whose copy is in INBOX too is stored as ours; then `folders`. On Gmail
(`X-GM-EXT-1`) `X-GM-THRID` is fetched as a thread key, and `all_mail: true` reads the `\\All`
folder alone, telling our messages by their `\\Sent` label. For each folder:

1. EXAMINE (a read-only SELECT) gives UIDVALIDITY and UIDNEXT.
2. The cursor keeps `{uidvalidity, last_uid}` per folder. A changed UIDVALIDITY means the
   server renumbered the folder: it is read again from the start, and since the Message-ID is
   the external id, nothing already stored is stored twice.
3. Nothing is new when UIDNEXT - 1 <= last_uid. Otherwise `UID SEARCH last+1:*`, keeping only
   UIDs above last_uid: `n:*` always matches the highest UID, even when it is below n.
4. `UID FETCH` of `batch_size` UIDs at a time, given as lists of numbers (imapclient 4
   rejects range strings), of `BODY.PEEK[HEADER.FIELDS (...)]<0.n>` (PEEK never sets
   `\\Seen`; the partial keeps a header block past the header limit from being sent) and
   `INTERNALDATE` with `normalise_times = False` (aware datetimes), read by
   connectors.mail.imap_fetch (imapclient's result, without the cost of its lexer, the usual
   responses read from the socket in large chunks rather than a line at a time). Folders take
   turns: a batch holds one FETCH from each folder with new mail, so replies in Sent and the
   questions in INBOX they answer, which arrived about together, are stored and measured
   together (each conversation derived once, not twice: about a quarter of a first sync's
   cost). (A session per folder, sparing the SELECT at each turn, measured no faster.)
   Each FETCH is sent before the answer to the previous one is parsed (pipelining), so the
   server prepares an answer while we parse the last: one FETCH at most in flight, none
   during an EXAMINE, so a UID always means the folder it was asked in.
   Each batch is yielded with the cursor that covers it, so ingest stores both in one
   transaction: a dropped connection loses nothing, and the next poll starts after the last
   stored batch.

A message that cannot be measured (no From in INBOX, no usable or plausible time, anything in
it that does not decode) is a Rejection located `FOLDER uid N` (connectors.base.Records); the
rest of the folder is read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError
from imapclient.imapclient import ALL, SENT
from pydantic import ConfigDict, with_config
from typing_extensions import TypedDict

from connectors.base import (
    CURSOR_VERSION,
    Batch,
    Connector,
    ConnectorContext,
    ConnectorError,
    Cursor,
    Made,
    Number,
    Records,
    stored_cursor,
)
from connectors.mail import imap_fetch
from connectors.mail.headers import FIELDS, parse
from connectors.mail.imap_session import ImapSettings, describe, session
from connectors.mail.message import (
    MAX_HEADER_BYTES,
    TOO_LONG,
    Classifier,
    MailError,
    build_event,
    own_addresses,
    skipped_by_labels,
)
from monitor.config import SourceSettings

logger = logging.getLogger(__name__)

# A partial of one byte more than the header limit: the server never sends a longer literal,
# and a block that fills it is known to be too long (and rejected, alone).
HEADER_ITEM = f"BODY.PEEK[HEADER.FIELDS ({' '.join(FIELDS)})]<0.{MAX_HEADER_BYTES + 1}>"
GMAIL = b"X-GM-EXT-1"
_warned_no_sent: set[str] = set()  # sources already told that no Sent folder was found


@dataclass
class _Folder:
    name: str
    sent: bool
    validity: int
    uids: list[int]  # new UIDs not read yet in this poll
    changed: bool  # its cursor entry changed without reading anything (new or renumbered)


class ImapConnector(Connector):
    kind = "imap"
    settings = ImapSettings
    reads_ahead = True  # a poll mostly waits for the server

    def __init__(self, source: SourceSettings, context: ConnectorContext) -> None:
        super().__init__(source, context)
        assert isinstance(source, ImapSettings), type(source)
        self.imap = source
        self.classifier = Classifier(
            context, own_addresses([source.username]), source.thread_window
        )
        self._header_key: bytes | None = None  # the header section's name, as the server says it

    def check(self) -> str:
        with session(self.imap, self.context.base_dir) as client:
            found = []
            for folder, sent in self._plan(client):
                status = client.folder_status(folder, [b"MESSAGES"])
                count = int(status.get(b"MESSAGES", 0))
                found.append(f"{folder}{' (sent)' if sent else ''} {count:,} messages")
        return f"{self.imap.address} ({self.imap.security}): {', '.join(found)}"

    def fetch(self, cursor: Cursor | None, now: datetime) -> Iterator[Batch]:
        return self.fetch_late(lambda: cursor, now)

    def fetch_late(self, cursor: Callable[[], Cursor | None], now: datetime) -> Iterator[Batch]:
        with session(self.imap, self.context.base_dir) as client:
            items = self.items(gmail=client.has_capability(GMAIL))
            plan = self._plan(client)
            # Asked for only now: connecting and logging in went on while it was read.
            state = load_cursor(cursor())
            folders = [self._open(client, name, sent, state) for name, sent in plan]
            changed = any(f.changed for f in folders)
            records = self.collector(now)
            turns = _turns(folders, self.imap.batch_size)
            selected = folders[-1].name if folders else None
            sent = None
            for index, (folder, part, ends_round) in enumerate(turns):
                if sent is None:  # the first FETCH
                    selected = self._switch(client, folder.name, folder.validity, selected)
                    sent = imap_fetch.send(client, part, items)
                answer = imap_fetch.answer(client, sent)
                # The next FETCH goes out before this answer is parsed, so that the server
                # prepares it meanwhile (pipelining: without it, the server's time and ours
                # added up). One FETCH at most is in flight; none during a SELECT.
                sent = None
                if index + 1 < len(turns):
                    following, following_part, _ = turns[index + 1]
                    selected = self._switch(client, following.name, following.validity, selected)
                    sent = imap_fetch.send(client, following_part, items)
                response = imap_fetch.read(client, answer)
                self.events(records, folder.name, folder.sent, part, response)
                state[folder.name] = {"uidvalidity": folder.validity, "last_uid": part[-1]}
                if ends_round:
                    changed = False
                    # Storing the batch is not the server's time: the FETCH in flight waits
                    # unwatched, and its reading is given a deadline of its own.
                    imap_fetch.pause(client)
                    yield records.batch(dump_cursor(state))
            if changed:  # nothing new, but a folder was renumbered: keep its new UIDVALIDITY
                yield Batch([], dump_cursor(state))

    def _switch(self, client: IMAPClient, name: str, validity: int, selected: str | None) -> str:
        """EXAMINE folder `name` unless it is the one selected; the folder selected now."""
        if selected != name:
            self._select(client, name, validity)
        return name

    def items(self, *, gmail: bool) -> list[str]:
        """What each message's FETCH asks for: its header block and arrival (and on Gmail its
        thread id and labels); `event` reads the answer."""
        return [HEADER_ITEM, "INTERNALDATE"] + (["X-GM-THRID", "X-GM-LABELS"] if gmail else [])

    def _plan(self, client: IMAPClient) -> list[tuple[str, bool]]:
        """The folders to read, the sent folder first, with whether each is a sent folder."""
        settings = self.imap
        if settings.all_mail:
            if not client.has_capability(GMAIL):
                raise ConnectorError(
                    f"{settings.address}: all_mail needs Gmail (no X-GM-EXT-1)", permanent=True
                )
            all_mail = client.find_special_folder(ALL)
            if all_mail is None:
                raise ConnectorError(f"{settings.address}: no \\All folder", permanent=True)
            return [(all_mail, False)]
        sent = settings.sent_folder
        if sent == "auto":
            sent = client.find_special_folder(SENT)
            if sent is None and self.source.name not in _warned_no_sent:
                _warned_no_sent.add(self.source.name)
                logger.warning(
                    "%s: no \\Sent folder found; set sent_folder to read replies sent from "
                    "other mail clients",
                    self.source.name,
                )
        plan = [(sent, True)] if sent else []
        return plan + [(f, False) for f in settings.folders if f != sent]

    def _select(
        self, client: IMAPClient, folder: str, validity: int | None = None
    ) -> dict[bytes, Any]:
        """EXAMINE `folder`; the server's answer. A folder renumbered in the middle of a poll
        fails the poll (nothing of it is lost: the next poll reads it again)."""
        try:
            info = client.select_folder(folder, readonly=True)
        except IMAPClientAbortError:
            raise
        except IMAPClientError as exc:
            raise ConnectorError(
                f"{self.imap.address}: cannot open folder {folder!r} ({describe(exc)})",
                permanent=True,
            ) from None
        if validity is not None and int(info[b"UIDVALIDITY"]) != validity:
            raise ConnectorError(f"{self.imap.address}: {folder} was renumbered during the poll")
        return dict(info)

    def _open(
        self, client: IMAPClient, name: str, sent: bool, state: dict[str, dict[str, int]]
    ) -> _Folder:
        """A folder's new UIDs since the cursor (all of them after a UIDVALIDITY change)."""
        info = self._select(client, name)
        validity = int(info[b"UIDVALIDITY"])
        stored = state.get(name)
        last = 0
        if stored is not None and stored["uidvalidity"] == validity:
            last = stored["last_uid"]
        elif stored is not None:
            logger.info(
                "%s: %s has a new UIDVALIDITY (%s, was %s): reading it again",
                self.source.name,
                name,
                validity,
                stored["uidvalidity"],
            )
        uidnext = info.get(b"UIDNEXT")
        uids: list[int] = []
        if uidnext is None or int(uidnext) - 1 > last:
            # `UID n:*` always matches the highest UID, even below n: keep only newer ones.
            uids = sorted(u for u in client.search(["UID", f"{last + 1}:*"]) if u > last)
        changed = stored != {"uidvalidity": validity, "last_uid": last}
        if changed:
            state[name] = {"uidvalidity": validity, "last_uid": last}
        return _Folder(name, sent, validity, uids, changed)

    def events(
        self,
        records: Records,
        folder: str,
        sent: bool,
        uids: list[int],
        response: dict[int, dict[bytes, Any]],
    ) -> None:
        """The events of one FETCH response into `records` (a pure function of it)."""
        for uid in uids:
            records.take(f"{folder} uid {uid}", self.event, sent, response.get(uid))

    def event(self, sent: bool, record: dict[bytes, Any] | None) -> Made:
        """The event of one message of a FETCH response; None for a Gmail draft, spam or
        trash; MailError when it cannot be measured."""
        if record is None:
            raise MailError("the server returned no data for it")
        header_key = self._header_key
        if header_key is None or header_key not in record:
            header_key = next((k for k in record if k.startswith(b"BODY[HEADER")), None)
            self._header_key = header_key
        raw = record.get(header_key) if header_key is not None else None
        if not isinstance(raw, bytes):
            raise MailError("the server returned no headers for it")
        if len(raw) > MAX_HEADER_BYTES:
            raise MailError(TOO_LONG)
        found_labels = record.get(b"X-GM-LABELS")
        labels = [_text(label) for label in found_labels] if found_labels else []
        if labels and skipped_by_labels(labels):
            return None  # Gmail's All Mail holds drafts too: not sent, not an answer
        thread = record.get(b"X-GM-THRID")
        return build_event(
            parse(raw),
            arrived=_arrival(record.get(b"INTERNALDATE")),
            sent=sent,
            classifier=self.classifier,
            gmail_thread=str(thread) if thread is not None else None,
            gmail_labels=labels,
        )


def _turns(folders: list[_Folder], size: int) -> list[tuple[_Folder, list[int], bool]]:
    """The FETCHes of a poll in order: round by round, `size` UIDs of each folder with new mail
    (a reply and its question, arriving about together in Sent and INBOX, are then stored
    and measured together, rather than each conversation twice), with whether each ends its
    round (and so a batch)."""
    turns: list[tuple[_Folder, list[int], bool]] = []
    for start in range(0, max((len(f.uids) for f in folders), default=0), size):
        parts = [(f, f.uids[start : start + size]) for f in folders if len(f.uids) > start]
        turns += [(f, part, i == len(parts) - 1) for i, (f, part) in enumerate(parts)]
    return turns


def _arrival(value: object) -> datetime | None:
    """INTERNALDATE as aware UTC (imapclient gives it with its own offset once
    `normalise_times` is off)."""
    if not isinstance(value, datetime):
        return None
    try:
        offset = value.utcoffset()
    except ValueError:  # imapclient accepts offsets of 24 hours or more; datetime does not
        raise MailError("INTERNALDATE has an impossible time zone offset") from None
    if offset is None:
        return None  # cannot happen with normalise_times off; never guess a zone
    try:
        return value.astimezone(UTC)
    except OverflowError:  # the year 9999 (or 1) moved past the end of the calendar
        raise MailError("INTERNALDATE is out of range") from None


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


@with_config(ConfigDict(extra="forbid"))
class FolderState(TypedDict):
    uidvalidity: Number  # the folder's UIDVALIDITY when `last_uid` was read
    last_uid: Number  # the highest UID stored


@with_config(ConfigDict(extra="forbid"))
class ImapCursor(TypedDict):
    v: Number
    folders: dict[str, FolderState]  # by folder name


def load_cursor(cursor: Cursor | None) -> dict[str, dict[str, int]]:
    """The per-folder state of a stored cursor; ConnectorError if it is not ours."""
    checked = stored_cursor(ImapCursor, cursor, "imap")
    if checked is None:
        return {}
    return {
        name: {"uidvalidity": entry["uidvalidity"], "last_uid": entry["last_uid"]}
        for name, entry in checked["folders"].items()
    }


def dump_cursor(state: dict[str, dict[str, int]]) -> Cursor:
    return {"v": CURSOR_VERSION, "folders": {k: dict(v) for k, v in state.items()}}
