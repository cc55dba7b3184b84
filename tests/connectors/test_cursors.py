"""Cursor shapes are declared once per kind and checked in one place: cursors as the previous
version stored them load as they are, and a cursor of another version or kind is refused."""

from __future__ import annotations

import json
from typing import Any

import pytest

from connectors.base import ConnectorError, checked_cursor
from connectors.chat.json_exports import ExportCursor
from connectors.chat.slack_export import SlackCursor
from connectors.files import FileCursor
from connectors.mail import imap, maildir
from connectors.mail.imap import ImapCursor
from connectors.mail.maildir import MaildirCursor
from connectors.phone.answering_service_csv import LogCursor
from connectors.phone.asterisk_cdr import CdrCursor
from connectors.phone.asterisk_queue_log import QueueLogCursor

FILES = {
    "v": 1,
    "files": {
        "65024:5587281": {
            "head": "62a5d99a11aa2f1710b69a3eaa40ad725820057a",
            "line": 644,
            "offset": 17396,
            "path": "/srv/mail/inbox.mbox",
        }
    },
}
# As the previous version stored them: the file, export, answering-service and queue_log
# cursors from its polls of the bundled demo; the others as its dump functions wrote them, with
# a partly read snapshot, a CDR call still settling and a caller still waiting.
STORED: dict[Any, dict[str, Any]] = {
    FileCursor: FILES,
    ImapCursor: {"v": 1, "folders": {"INBOX": {"uidvalidity": 1700000000, "last_uid": 42}}},
    MaildirCursor: {
        "v": 1,
        "folders": {"INBOX": {"after": 1763629200000000000, "recent": {"1763629201.M1P2.h": 3}}},
    },
    SlackCursor: {
        "v": 1,
        "snapshots": {
            "partial": ["C0WHOLE01/10659:34bcb13b", 120],
            "read": ["channels.json:1281:bd091b95", "users.json:5845:e159acb2"],
        },
    },
    ExportCursor: {
        "v": 1,
        "documents": {"partial": None, "read": ["78140:00cd8801"]},
        "lines": None,
    },
    LogCursor: {
        "v": 1,
        "files": {
            "65024:5587284": {
                "complete": True,
                "line": 19,
                "lines": 19,
                "sha1": "3ffd510fda640af5c80769de0f402981d6f8c54a",
                "size": 1916,
                "version": "1916:1796656296029570913",
            }
        },
    },
    CdrCursor: {
        "v": 1,
        "tail": FILES,
        "pending": [
            {
                "key": "1763629200.10",
                "src": "+442079460958",
                "dst": "600",
                "dcontext": "from-pstn",
                "dstchannel": "",
                "lastapp": "Queue",
                "disposition": "NO ANSWER",
                "start": "2026-11-20T09:00:00+00:00",
                "answer": None,
                "end": "2026-11-20T09:01:00+00:00",
                "billsec": 0.0,
                "origin": True,
            }
        ],
        "latest": "2026-11-20T09:01:00+00:00",
    },
    QueueLogCursor: {
        "latest": 1795109136.0,
        "open": [
            ["1795109000.12", "support", 1795109000.0, "+442079460958", None, None, True, False]
        ],
        "position": FILES,
        "header": ["time", "callid", "queuename", "agent", "event", "data"],
        "v": 1,
    },
}


@pytest.mark.parametrize("shape", list(STORED), ids=lambda shape: shape.__name__)
def test_a_cursor_the_previous_version_stored_loads_as_it_is(shape: Any) -> None:
    stored = STORED[shape]
    assert json.loads(json.dumps(checked_cursor(shape, stored, "a"))) == stored


@pytest.mark.parametrize("shape", list(STORED), ids=lambda shape: shape.__name__)
def test_a_cursor_of_another_version_or_kind_is_refused(shape: Any) -> None:
    with pytest.raises(ValueError, match="not a version 1 a cursor"):
        checked_cursor(shape, {**STORED[shape], "v": 2}, "a")
    for other, cursor in STORED.items():
        if other is not shape:
            with pytest.raises(ValueError, match="a cursor"):
                checked_cursor(shape, cursor, "a")


def test_a_damaged_cursor_names_the_field_and_fails_the_poll_for_good() -> None:
    damaged = {"v": 1, "folders": {"INBOX": {"uidvalidity": 1, "last_uid": True}}}
    with pytest.raises(ConnectorError, match=r"imap cursor folders\.INBOX\.last_uid") as caught:
        imap.load_cursor(damaged)
    assert caught.value.permanent
    assert str(caught.value).startswith("stored cursor is unusable: ")
    with pytest.raises(ConnectorError, match=r"maildir cursor folders\.INBOX\.after"):
        maildir.load_cursor(STORED[ImapCursor])
