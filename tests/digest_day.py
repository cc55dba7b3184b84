"""A hand-built day for the digest tests, stored through the real ingest path.

Thursday 19 November 2026 in Europe/London (= UTC in November), seen at 08:00 the next morning.
Three sources, each file written here and read by its real connector with `poll_source`:

web-chat (chat_jsonl, decision; reply target 2m)
  c1 09:00 answered after 60 s          c2 09:30 answered after 300 s (late)
  c3 10:15 never answered (open, late)  c4 14:00 answered after 90 s
  c5 16:00 answered after 45 s          and on Wed 18: c0 09:00 answered after 30 s
  -> received 5, answered 4, within 3 of 5 = 60%, median 1m 00s, p90 5m 00s, breached 2
phones (asterisk_queue_log, experience; hold 5m / 13m, service level 20 s)
  1.1 09:00 answered after 10 s         1.2 10:00 answered after 400 s (over 5m)
  1.3 11:00 hung up after 840 s (over 5m and 13m; a callback inquiry, open)
  1.4 15:00 answered after 30 s
  -> 4 calls, 3 answered, 25% abandoned, service level 25%, median 30s, p90 14m 00s
answering (answering_service_csv, experience; reply target 24h)
  AS-1 13:00 returned 13:30             AS-2 16:00 not returned (open, not yet due)
  AS-0 Tue 17 09:00 not returned (open, past target), from "O'Brien & Sons"
Customer-controlled text is hostile: HTML, a script, and Jinja syntax.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml
from markupsafe import escape
from sqlalchemy import Engine

from monitor.config import Settings
from monitor.config_file import settings_from_mapping
from monitor.store.database import make_engine, prepare
from monitor.store.ingest import poll_source

DAY = date(2026, 11, 19)
NOW = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
HOSTILE_NAME = "<img src=x onerror=alert(1)>"
HOSTILE_CALLER = "<script>alert('x')</script>"
HOSTILE_URGENCY = "{{ 7*7 }} <b>urgent</b>"
HOSTILE_TEXTS = (HOSTILE_NAME, HOSTILE_CALLER, f"urgency: {HOSTILE_URGENCY}")


def _at(hhmmss: str, day: int = 19) -> str:
    return f"2026-11-{day:02d}T{hhmmss}+00:00"


def chat_lines() -> list[dict[str, Any]]:
    lines = []

    def say(conversation: str, at: str, role: str, author: str, day: int = 19) -> None:
        lines.append(
            {
                "id": f"{conversation}-{len(lines)}",
                "conversation": conversation,
                "at": _at(at, day),
                "author_role": role,
                "author": author,
            }
        )

    say("c0", "09:00:00", "customer", "Zoe", day=18)
    say("c0", "09:00:30", "agent", "Lena", day=18)
    say("c1", "09:00:00", "customer", "Ann")
    say("c1", "09:01:00", "agent", "Lena")
    say("c2", "09:30:00", "customer", "Bob")
    say("c2", "09:35:00", "agent", "Lena")
    say("c3", "10:15:00", "customer", HOSTILE_NAME)
    say("c4", "14:00:00", "customer", "Cy")
    say("c4", "14:01:30", "agent", "Lena")
    say("c5", "16:00:00", "customer", "Di")
    say("c5", "16:00:45", "agent", "Lena")
    return lines


T9 = int(datetime(2026, 11, 19, 9, 0, tzinfo=UTC).timestamp())


def queue_lines() -> list[str]:
    def q(offset: int, callid: str, event: str, *data: object) -> str:
        agent = "PJSIP/201" if event != "ENTERQUEUE" else "NONE"
        return "|".join([str(T9 + offset), callid, "support", agent, event, *map(str, data)])

    hour = 3600
    return [
        q(0, "1.1", "ENTERQUEUE", "", "02079460001", 1),
        q(10, "1.1", "CONNECT", 10, "9.1", 2),
        q(70, "1.1", "COMPLETECALLER", 10, 60, 1),
        q(hour, "1.2", "ENTERQUEUE", "", "02079460002", 1),
        q(hour + 400, "1.2", "CONNECT", 400, "9.2", 2),
        q(hour + 500, "1.2", "COMPLETEAGENT", 400, 100, 1),
        q(2 * hour, "1.3", "ENTERQUEUE", "", "02079460003", 1),
        q(2 * hour + 840, "1.3", "ABANDON", 1, 1, 840),
        q(6 * hour, "1.4", "ENTERQUEUE", "", "02079460004", 1),
        q(6 * hour + 30, "1.4", "CONNECT", 30, "9.4", 2),
        q(6 * hour + 90, "1.4", "COMPLETECALLER", 30, 60, 1),
    ]


ANSWERING_CSV = (
    "Message ID,Taken,Caller,Call back on,Urgency,Returned\n"
    "AS-0,2026-11-17 09:00,O'Brien & Sons,+44 7700 900009,normal,\n"
    "AS-1,2026-11-19 13:00,Ann Answered,+44 7700 900001,low,2026-11-19 13:30\n"
    f'AS-2,2026-11-19 16:00,"{HOSTILE_CALLER}",+44 7700 900002,"{HOSTILE_URGENCY}",\n'
)


def raw_config(database: str, **top: Any) -> dict[str, Any]:
    return {
        "timezone": "Europe/London",
        "database": database,
        "sources": [
            {"name": "web-chat", "kind": "chat_jsonl", "path": "chat.jsonl", "stage": "decision"},
            {
                "name": "phones",
                "kind": "asterisk_queue_log",
                "path": "queue_log",
                "targets": {"hold_warn": "5m", "hold_max": "13m"},
            },
            {
                "name": "answering",
                "kind": "answering_service_csv",
                "path": "answering.csv",
                "columns": {
                    "taken_at": "Taken",
                    "caller": "Caller",
                    "callback_number": "Call back on",
                    "urgency": "Urgency",
                    "callback_at": "Returned",
                    "id": "Message ID",
                },
                "time_format": ["%Y-%m-%d %H:%M"],
            },
        ],
        **top,
    }


def config(folder: Path, database: str, **top: Any) -> Settings:
    return settings_from_mapping(raw_config(database, **top), folder)


def write_config(folder: Path, database: str, **top: Any) -> Path:
    """The same configuration as a YAML file, for the command line."""
    path = folder / "support-monitor.yaml"
    path.write_text(yaml.safe_dump(raw_config(database, **top)), encoding="utf-8")
    return path


def mail_settings(host: str, port: int) -> dict[str, Any]:
    """`smtp` and `digest` sections sending to a loopback server (no TLS on loopback)."""
    return {
        "smtp": {
            "host": host,
            "port": port,
            "security": "none",
            "sender": "Support Monitor <monitor@example.com>",
        },
        "digest": {"to": ["lead@example.com", "ops@example.com"]},
    }


def write_files(folder: Path) -> None:
    chat = "".join(json.dumps(line) + "\n" for line in chat_lines())
    (folder / "chat.jsonl").write_text(chat, encoding="utf-8")
    (folder / "queue_log").write_text("\n".join(queue_lines()) + "\n", encoding="utf-8")
    (folder / "answering.csv").write_text(ANSWERING_CSV, encoding="utf-8")


def build_day(
    folder: Path,
    database: str,
    *,
    now: datetime = NOW,
    write: Callable[[Path], None] | None = None,
    **top: Any,
) -> tuple[Settings, Engine]:
    """The day's files written (by `write`, default `write_files`) and polled at `now` into
    `database`; returns the settings and store."""
    (write or write_files)(folder)
    settings = config(folder, database, **top)
    engine = make_engine(database, folder)
    prepare(engine)
    for source in settings.sources:
        result = poll_source(engine, settings, source, now=now, clock=lambda: now)
        assert result.ok and not result.rejected, result.summary()
    return settings, engine


def empty_store(folder: Path, database: str, **top: Any) -> tuple[Settings, Engine]:
    """The same sources, never read: a day without data, and without a source read."""
    settings = config(folder, database, **top)
    engine = make_engine(database, folder)
    prepare(engine)
    return settings, engine


def quiet_store(folder: Path, database: str, **top: Any) -> tuple[Settings, Engine]:
    """The same sources, each read after the day ended and holding nothing: a quiet day."""
    for name in ("chat.jsonl", "queue_log"):
        (folder / name).write_text("", encoding="utf-8")
    (folder / "answering.csv").write_text(ANSWERING_CSV.splitlines()[0] + "\n", encoding="utf-8")
    settings, engine = empty_store(folder, database, **top)
    for source in settings.sources:
        result = poll_source(engine, settings, source, now=NOW, clock=lambda: NOW)
        assert result.ok, result.summary()
    return settings, engine


def without_customer_text(text: str) -> str:
    """`text` with the hostile customer text (as is, and as the HTML part escapes it) removed,
    so what is left is what the templates themselves wrote."""
    for hostile in HOSTILE_TEXTS:
        text = text.replace(hostile, "").replace(str(escape(hostile)), "")
    return text
