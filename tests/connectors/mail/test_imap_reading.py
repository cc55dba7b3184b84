"""Our IMAP connections read the usual FETCH responses straight from the socket, in large
chunks (connectors.mail.imap_fetch `_read_usual`), and leave everything else to imaplib: the
result is what `IMAPClient.fetch` returns on the same bytes, however the answer is cut into
reads, whatever else the server says in it (generated answers, from a real TCP server here),
and a literal past the header limit is refused before it is read, on this path too.
"""

from __future__ import annotations

import imaplib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from imapclient import IMAPClient

from connectors.base import ConnectorError
from connectors.mail import imap_fetch
from connectors.mail.imap import HEADER_ITEM
from connectors.mail.imap_session import MAX_LITERAL, ImapSettings, session
from monitor.config_file import settings_from_mapping
from tests.loopback import LoopbackServer, imap_source

GREETING = b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] scripted\r\n"
SECTION = HEADER_ITEM.replace(".PEEK", "").rsplit(".", 1)[0].encode() + b">"  # BODY[...]<0>


class ScriptedImap(LoopbackServer):
    """A real TCP IMAP server that logs anyone in, opens any folder and answers every UID FETCH
    with `answer` (untagged responses) followed by the tagged OK."""

    def __init__(self) -> None:
        super().__init__()
        self.answer = b""

    def serve(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        with connection, connection.makefile("rb") as lines:
            try:
                connection.sendall(GREETING)
                for line in lines:
                    tag, _, command = line.partition(b" ")
                    verb = command.split(b" ", 1)[0].upper()
                    if verb == b"LOGOUT":
                        connection.sendall(b"* BYE bye\r\n" + tag + b" OK LOGOUT done\r\n")
                        return
                    said = self.answer if verb == b"UID" else b""
                    if verb == b"EXAMINE":
                        said = b"* 7 EXISTS\r\n* OK [UIDVALIDITY 1] ok\r\n"
                    connection.sendall(said + tag + b" OK done\r\n")
            except OSError:
                return


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedImap]:
    with ScriptedImap() as scripted:
        yield scripted


def imap_settings(port: int, tmp_path: Path) -> ImapSettings:
    source = imap_source(port, "10s")
    found = settings_from_mapping({"sources": [source]}, tmp_path).sources[0]
    assert isinstance(found, ImapSettings)
    return found


@contextmanager
def chunks_of(size: int) -> Iterator[None]:
    """Reads of the socket of at most `size` bytes: every cut of the answer gets tried."""
    saved = imap_fetch._CHUNK
    imap_fetch._CHUNK = size
    try:
        yield
    finally:
        imap_fetch._CHUNK = saved


def usual(seq: int, uid: int, date: bytes, literal: bytes, tail: bytes = b")") -> bytes:
    return (
        b'* %d FETCH (UID %d INTERNALDATE "%s" %s {%d}\r\n'
        % (seq, uid, date, SECTION, len(literal))
        + literal
        + tail
        + b"\r\n"
    )


DATES = st.sampled_from(
    [b"20-Nov-2026 09:00:00 +0000", b" 2-Nov-2026 09:00:00 -0130", b"31-Feb-2026 09:00:00 +0000"]
    + [b"someday", b"20-Nov-2026 09:00:00 +2400", b"BODY[x]"]
)
LITERALS = st.binary(max_size=80) | st.sampled_from(
    [b"From: a@b.test\r\n\r\n", b")\r\n* 9 FETCH (UID 9 ", b"", b"\r\n", b"{5}\r\n"]
)
UIDS = st.integers(1, 6)
RESPONSES = st.one_of(
    st.builds(usual, st.integers(1, 9), UIDS, DATES, LITERALS),
    st.builds(  # more items after the literal, or a broken end: imaplib's
        usual,
        st.integers(1, 9),
        UIDS,
        DATES,
        LITERALS,
        st.sampled_from([b" RFC822.SIZE 12)", b"))", b")x"]),
    ),
    st.builds(lambda uid: b"* %d FETCH (FLAGS (\\Seen))\r\n" % uid, UIDS),
    st.builds(lambda uid: b"* 4 FETCH (UID %d FLAGS (\\Seen))\r\n" % uid, UIDS),
    st.sampled_from(
        [
            b"* 3 EXISTS\r\n",
            b"* 1 RECENT\r\n",
            b"* OK [ALERT] still here\r\n",
            b'* 5 FETCH (UID 5 INTERNALDATE "20-Nov-2026 09:00:00 +0000" BODY[TEXT] {2}\r\nhi)\r\n',
            b"* 6 FETCH (UID 6 BODY[HEADER.FIELDS (TO)] {4}\r\n\r\n\r\n INTERNALDATE"
            b' "20-Nov-2026 09:00:00 +0000")\r\n',
        ]
    ),
)
CHUNKS = st.sampled_from([1, 2, 7, 64, 300, 1 << 16])


def both_fetch(server: ScriptedImap, tmp_path: Path, answer: bytes) -> tuple[Any, Any]:
    """What `imap_fetch.fetch` on our connection and `IMAPClient.fetch` give for `answer`:
    each a result or the class of the error raised."""
    server.answer = answer
    uids, items = [1, 2, 3, 4, 5, 6, 7], [HEADER_ITEM, "INTERNALDATE"]
    ours: Any
    with session(imap_settings(server.port, tmp_path), tmp_path) as client:
        client.select_folder("INBOX", readonly=True)
        try:
            ours = imap_fetch.fetch(client, uids, items)
        except Exception as exc:  # noqa: BLE001 - compared with imapclient's
            ours = type(exc)
        else:  # nothing past the answer is kept: the next command reads its own answer
            assert client._imap.unread == b""
    theirs: Any
    reference = IMAPClient("127.0.0.1", port=server.port, ssl=False, timeout=10)
    try:
        reference.login("support@example.com", "secret")
        reference.normalise_times = False
        reference.select_folder("INBOX", readonly=True)
        try:
            theirs = reference.fetch(uids, items)
        except Exception as exc:  # noqa: BLE001
            theirs = type(exc)
    finally:
        reference.shutdown()
    return ours, theirs


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answer=st.lists(RESPONSES, max_size=8).map(b"".join), chunk=CHUNKS)
@example(answer=usual(1, 1, b"20-Nov-2026 09:00:00 +0000", b"From: a@b.test\r\n\r\n"), chunk=3)
def test_a_fetch_answer_read_in_chunks_is_what_imapclient_returns(
    server: ScriptedImap, tmp_path_factory: pytest.TempPathFactory, answer: bytes, chunk: int
) -> None:
    tmp_path = tmp_path_factory.mktemp("scripted")
    with chunks_of(chunk):
        ours, theirs = both_fetch(server, tmp_path, answer)
    assert shown(ours) == shown(theirs)
    event("read" if isinstance(ours, dict) else f"failed: {ours.__name__}")


def shown(result: Any) -> Any:
    """A fetch's result with each time as its wall time and offset: equal datetimes may differ
    in offset, and one with an offset of a day or more (imapclient accepts them) cannot be
    compared at all."""
    if not isinstance(result, dict):
        return result
    return {
        uid: {key: written(value) for key, value in record.items()}
        for uid, record in result.items()
    }


def written(value: Any) -> Any:
    if isinstance(value, datetime):
        zone = value.tzinfo
        return value.replace(tzinfo=None), zone.utcoffset(None) if zone is not None else None
    return value


def test_the_usual_answer_is_read_without_imaplib_reading_its_lines(
    server: ScriptedImap, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast path is the one taken: imaplib reads only the tagged line."""
    lines: list[bytes] = []
    readline = imaplib.IMAP4.readline

    def recorded(imap: imaplib.IMAP4) -> bytes:
        line = readline(imap)
        lines.append(line)
        return line

    monkeypatch.setattr(imaplib.IMAP4, "readline", recorded)
    answer = b"".join(
        usual(n, n, b"20-Nov-2026 09:00:00 +0000", b"From: a%d@b.test\r\n\r\n" % n)
        for n in range(1, 6)
    )
    ours, theirs = both_fetch(server, tmp_path, answer)
    assert ours == theirs and len(ours) == 5
    fetch_lines = [line for line in lines if b"FETCH" in line]
    assert len(fetch_lines) == 5  # imapclient's, on the plain connection; ours read none


def test_a_literal_past_the_header_limit_is_refused_before_it_is_read(
    tmp_path: Path,
) -> None:
    """Announced in a FETCH answer, followed by more bytes than the limit: refused at its
    size, with the same one line as imaplib's reading gives, not buffered first."""
    with ScriptedImap() as server:
        head = b'* 1 FETCH (UID 1 INTERNALDATE "20-Nov-2026 09:00:00 +0000" %s {%d}\r\n' % (
            SECTION,
            MAX_LITERAL + 1,
        )
        server.answer = head + bytes(MAX_LITERAL + 10) + b")\r\n"
        with (
            pytest.raises(ConnectorError) as raised,
            session(imap_settings(server.port, tmp_path), tmp_path) as client,
        ):
            client.select_folder("INBOX", readonly=True)
            imap_fetch.fetch(client, [1], [HEADER_ITEM, "INTERNALDATE"])
    assert str(raised.value) == (
        f"127.0.0.1:{server.port}: connection lost (command: UID => the server announced a "
        "literal of 1,048,578 bytes, more than the 1,048,577 byte limit: not read)"
    )
