"""Writes the malformed-input corpus beside this script (run it to regenerate; the files are
committed so a failure can be opened in an editor). Each file mixes good records with bad ones;
MANIFEST.json says how many records of each file must be stored and how many rejected.

A line reading exactly `@@GIANT@@` stands for a line of over 1 MB: the test expands it when it
copies the file, which keeps a megabyte of "x" out of the repository."""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
GIANT = b"@@GIANT@@"  # expanded by the test to a line over the 1 MB limit


def chat(at: str, role: str = "customer", conversation: str = "c1") -> bytes:
    record = {"conversation": conversation, "at": at, "author_role": role}
    return json.dumps(record).encode()


def cdr(n: int, start: str | None = None) -> bytes:
    src = f"02079460{n:03d}"
    minute = f"2026-11-20 09:{5 * n:02d}"  # a call every 5 minutes: no two share a start
    start = start or f"{minute}:00"
    fields = [
        "",
        src,
        "6000",
        "from-pstn",
        f'"" <{src}>',
        "SIP/trunk-1",
        "SIP/201-2",
        "Dial",
        "SIP/201",
        start,
        start,
        f"{minute}:50",
        "60",
        "55",
        "ANSWERED",
        "DOCUMENTATION",
        f"1700000{n:03d}.1",
        "",
        f"1700000{n:03d}.1",
    ]
    return ",".join(f'"{f}"' for f in fields).encode()


def zendesk(chat_id: str, *history: dict[str, object], **extra: object) -> bytes:
    chat = {"id": chat_id, "type": "chat", "history": list(history), **extra}
    return json.dumps(chat).encode()


def entry(at: str, nick: str = "visitor:1-abc", kind: str = "chat.msg") -> dict[str, object]:
    return {"type": kind, "timestamp": f"2026-11-20T{at}Z", "nick": nick, "msg": "x"}


def livechat(chat_id: str, *events: dict[str, object], **extra: object) -> bytes:
    return json.dumps({"id": chat_id, "events": list(events), **extra}).encode()


def lc(at: int, user_type: str = "visitor", kind: str = "message") -> dict[str, object]:
    return {"type": kind, "user_type": user_type, "timestamp": 1795165200 + at, "text": "x"}


def slack(*records: dict[str, object] | str) -> bytes:
    """One day file's content (the test writes each line of a slack_export corpus file as a
    day file of its own: support/2026-11-01.json, support/2026-11-02.json, ...)."""
    return json.dumps(list(records)).encode()


def msg(at: int, user: str = "U02CUST", **extra: object) -> dict[str, object]:
    return {
        "type": "message",
        "user": user,
        "ts": f"{1795165200 + at}.000100",
        "text": "x",
        **extra,
    }


FILES: dict[str, tuple[str, dict[str, object], list[bytes], tuple[int, int], int]] = {
    # name: (kind, extra settings, lines, (messages, calls) stored, records rejected)
    "chat_jsonl/mixed.jsonl": (
        "chat_jsonl",
        {},
        [
            chat("2026-11-20T09:00:00+00:00"),
            b"{not json",
            chat("2026-11-20T09:01:00"),  # no offset
            b'{"conversation": "c1", "author_role": "agent"}',  # no time
            b'{"conversation": "c1", "at": "2026-11-20T09:02:00Z", "author_role": "robot"}',
            GIANT,
            b"\x00\x01\x02\xff\xfe binary junk",
            b'{"conversation": "\xff\xfe", "at": "2026-11-20T09:03:00Z", "author_role": "agent"}',
            b"[1, 2, 3]",
            chat("2026-11-20T09:04:00+00:00", "agent"),
        ],
        (2, 0),
        8,
    ),
    "chat_jsonl/truncated.jsonl": (
        "chat_jsonl",
        {},
        [chat("2026-11-20T09:00:00+00:00"), b'{"conversation": "c1", "at": "2026-11-2'],
        (1, 0),
        1,
    ),
    "zendesk_chat/mixed.jsonl": (
        "zendesk_chat",
        {},
        [
            zendesk("c1", entry("09:00:00"), entry("09:01:00", "agent:361084605116")),
            b'{"id": "c2", "type": "chat", "history": [',
            zendesk("c3", entry("09:02:00"), {"type": "chat.msg", "nick": "visitor:1"}),  # 1 of 2
            zendesk("", entry("09:03:00")),  # no id
            GIANT,
            b"\x00\x01\x02\xff binary junk",
            zendesk("c4", entry("09:04:00"), type="ticket"),
            zendesk("c5", entry("09:05:00", kind="survey.sent")),
            b'{"id": "c6", "type": "offline_msg", "timestamp": 1795165200000}',
        ],
        (4, 0),  # c1's two messages, c3's first, c6 (an offline message)
        7,
    ),
    "zendesk_chat/page.json": (
        "zendesk_chat",
        {},
        [
            b'{"chats": ['
            + zendesk("c1", entry("09:00:00"), entry("09:01:00", "agent:361084605116"))
            + b", 17, "
            + zendesk("c2", entry("09:02:00"), "junk", end_timestamp="09:03")  # type: ignore[arg-type]
            + b", "
            + zendesk("c3", {"type": "chat.msg", "timestamp": "2026-11-20T09:04:00Z"})
            + b'], "count": 4}'
        ],
        (3, 0),  # c1's two messages, c2's first
        4,
    ),
    "livechat/mixed.jsonl": (
        "livechat",
        {},
        [
            livechat("L1", lc(0, "agent"), lc(10), lc(40, "agent"), ended_timestamp=1795165300),
            b"[1, 2",
            livechat("L2", lc(50), lc(60, "robot")),  # 1 of 2
            livechat("L3"),  # neither events nor threads
            GIANT,
            livechat("L4", lc(70), {"type": "message", "user_type": "visitor", "date": "soon"}),
            json.dumps(
                {
                    "id": "L5",
                    "threads": [
                        {
                            "id": "T1",
                            "events": [
                                {
                                    "id": "e1",
                                    "type": "message",
                                    "author_id": "nobody",
                                    "created_at": "2026-11-20T09:00:00Z",
                                },
                                {
                                    "id": "e2",
                                    "type": "message",
                                    "author_id": "cust-1",
                                    "created_at": "2026-11-20T09:01:00Z",
                                },
                            ],
                        }
                    ],
                    "users": [{"id": "cust-1", "type": "customer"}],
                }
            ).encode(),  # 1 of 2
        ],
        (7, 0),  # L1 3 + end, L2 1, L4 1, L5 1
        5,
    ),
    "livechat/archive.json": (
        "livechat",
        {},
        [
            b'{"chats": ['
            + livechat("L1", lc(0), lc(30, "agent"), lc(40, "supervisor"), ended_timestamp="x")
            + b', {"id": "L2", "threads": "SECRET"}, '
            + livechat("L3", lc(50), lc(70, kind="sticker"))
            + b"]}"
        ],
        (4, 0),  # L1's three messages, L3's first
        3,
    ),
    "slack_export/days.txt": (
        "slack_export",
        {"channels": ["support"]},
        [
            slack(msg(0), msg(60, "U01AGENT", thread_ts="1795165200.000100")),
            slack(msg(120, subtype="channel_join"), msg(180, subtype="poll_created")),  # 1 of 2
            b'[{"type": "message", "ts": ',
            slack(msg(240), {"type": "message", "user": "U02CUST", "text": "x"}),  # no ts
            slack(msg(300, ts=1795165500.1)),  # not a string
            GIANT,
            b'{"not": "an array"}',
            b"\xff\xfe binary junk",
            slack("junk", msg(360, thread_ts=17), msg(420, user=None)),  # 0 of 3
            slack(msg(480, subtype="message_changed"), msg(540, bot_id="B01")),  # 1 stored
        ],
        (5, 0),  # two on day 1, the join on day 2, one on day 4, the bot's on day 10
        10,
    ),
    "asterisk_cdr/mixed.csv": (
        "asterisk_cdr",
        {"timezone": "UTC"},
        [
            cdr(1),
            b'"","0207946","6000"',  # wrong column count
            cdr(2, start="not a time"),
            GIANT,
            b"\x00\x00\x00\x00",
            cdr(3).replace(b"ANSWERED", b"\xff\xfeANSWERED"),
            cdr(4),
        ],
        (0, 2),
        5,
    ),
    "answering_service_csv/mixed.csv": (
        "answering_service_csv",
        {"timezone": "UTC"},
        [
            b"id,taken_at,callback_number,callback_at",
            b"a1,2026-11-20 09:00,+44 20 7946 0001,",
            b"a2,yesterday-ish,+44 20 7946 0002,",
            b"a3,2026-11-20 09:10",  # missing fields
            GIANT,
            b"a4,2026-11-20 09:20,\xff\xfe\xfd,",
            b"a5,2026-11-20 09:30,+44 20 7946 0005,2026-11-20 10:00",
        ],
        (3, 0),  # a1; a5 and its callback
        4,
    ),
    "call_csv/mixed.csv": (
        "call_csv",
        {
            "columns": {
                "id": "id",
                "entered": "start",
                "answered": "answer",
                "ended": "end",
                "caller": "from",
            },
            "timezone": "UTC",
        },
        [
            b"id,start,answer,end,from",
            b"k1,2026-11-20 09:00:00,2026-11-20 09:00:30,2026-11-20 09:04:00,+44 20 7946 0001",
            b"k2,2026-11-20 09:05:00",  # wrong column count
            b"k3,31/02/2026,,2026-11-20 09:08:00,+44 20 7946 0003",  # impossible date
            GIANT,
            b"\x00\x01binary",
            b"k4,2026-11-20 09:10:00,,2026-11-20 09:12:00,+44 20 7946 0004",
        ],
        (1, 2),  # k4 was missed: a callback inquiry
        4,
    ),
    "asterisk_queue_log/mixed.log": (
        "asterisk_queue_log",
        {},
        [
            b"1795165200|q.1|support|NONE|ENTERQUEUE||02079460001|1",
            b"1795165260|q.1|support|SIP/201|COMPLETECALLER|20|40|1",
            b"1795165300|q.2|support",  # missing fields
            b"yesterday|q.3|support|NONE|ENTERQUEUE||02079460003|1",  # non-numeric epoch
            GIANT,
            b"\x00\x01\x02\xff binary junk",
            b"1795165400|q.\xff\xfe|support|NONE|ENTERQUEUE||02079460004|1",  # invalid UTF-8
            b"1795165500|q.5|support|NONE|ENTERQUEUE||02079460005|1",
            b"1795165590|q.5|support|NONE|ABANDON|1|1|90",
            b"1795165600|q.6|support|SIP/201|CONNECT|soon|1795165600.2|1",  # wait not a number
        ],
        (1, 2),  # q.1 answered; q.5 abandoned, and its callback inquiry
        6,
    ),
}


def mail(n: int, *fields: bytes, date: bytes = b"Fri Nov 20 09:00:00 +0000 2026") -> bytes:
    """One mbox message: a `From ` line, the given header fields, a body."""
    return b"\n".join([b"From MAILER-DAEMON " + date, *fields, b"", f"Body {n}.".encode(), b""])


GOOD = [b"From: Dana <dana@customer.test>", b"To: support@example.com"]

FILES["mbox/mixed.mbox"] = (
    "mbox",
    {},
    [
        b"junk before the first message",
        b"",
        mail(1, *GOOD, b"Subject: Order 1", b"Message-ID: <m1@customer.test>"),
        mail(2, b"To: support@example.com", b"Message-ID: <m2@customer.test>"),  # no From
        mail(3, *GOOD, b"Message-ID: <m3@customer.test>", b"Date: the day after tomorrow"),
        mail(4, b"X-Huge: start", GIANT, *GOOD),  # a header block over 1 MB
        mail(5, b"\x00\x01\x02\xff binary junk", b"\xfe\xfd"),  # no From
        mail(6, *GOOD, b"Subject: Gr\xfc\xdfe \xff =?x-bad?q?oops?=", b"Message-ID: <m6@c.test>"),
        mail(7, *GOOD, b"Message-ID: <m7@customer.test>", date=b"sometime"),  # no time at all
        mail(
            8, *GOOD, b"Message-ID: <m8@c.test>", b"Date: Fri, 20 Nov 2026 10:00 +0000", date=b"-"
        ),
    ],
    (4, 0),  # m1, m3 (timed by its From line), m6 (decoded as it can be), m8 (no From line date)
    5,  # the junk first line, m2, m4, m5, m7
)

# Maildir: each entry is one file in cur/ (a directory is copied as the source's Maildir).
MAILDIRS: dict[str, tuple[dict[str, object], dict[str, bytes], tuple[int, int], int]] = {
    "maildir/mixed": (
        {"sent_folder": None},
        {
            "1795165200.M1P1.mx:2,S": mail(1, *GOOD, b"Message-ID: <d1@c.test>").split(b"\n", 1)[1],
            "1795165260.M2P1.mx:2,S": b"To: support@example.com\nMessage-ID: <d2@c.test>\n\nx\n",
            "1795165320.M3P1.mx:2,S": b"X-Huge: start\n" + GIANT + b"\n\nbody\n",
            "1795165380.M4P1.mx:2,S": b"\x00\x01\x02\xff\xfe junk without headers",
            "1795165440.M5P1.mx:2,S": b"",
            "1795165500.M6P1.mx:2,S": b"From: dana@customer.test\nDate: 31 Feb 2026 25:61\n"
            b"Subject: \xff\xfe 8-bit\nMessage-ID: <d6@c.test>\n\nbody\n",
        },
        (2, 0),  # d1; d6 (timed by its file)
        4,
    ),
}


def main() -> None:
    manifest = {}
    for name, (extra, files, stored, rejected) in MAILDIRS.items():
        for file_name, data in files.items():
            path = HERE / name / "cur" / file_name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        manifest[name] = {
            "kind": "maildir",
            "settings": extra,
            "messages": stored[0],
            "calls": stored[1],
            "rejected": rejected,
        }
    for name, (kind, extra, lines, stored, rejected) in FILES.items():
        path = HERE / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\n".join(lines) + b"\n")
        manifest[name] = {
            "kind": kind,
            "settings": extra,
            "messages": stored[0],
            "calls": stored[1],
            "rejected": rejected,
        }
    (HERE / "MANIFEST.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
