"""A hand-built day with three agents in two teams across e-mail, chat and a phone queue,
stored through the real connectors and ingest. The figures are derived by hand in
tests/publish/test_explained_report.py.

Thursday 19 November 2026, Europe/London (= UTC in November), seen at Friday 20 12:30.

Teams: billing = Ann Smith (`Ann Smith`, ann@example.com, Agent/1001) and Bob Brown
(bob@example.com, PJSIP/1002); helpdesk = Cy Jones (`Cy Jones`, cy@example.com). PJSIP/1003
answers too but is on no team.

mail (mbox, team billing, calendar office: Mon-Fri 09:00-17:30; reply target 24 h)
  M1 09:00 dana "Invoice copy"      Ann replies 09:30         1800 s, business 1800 s
  M2 10:00 eve "Refund"             Cy replies 11:00          3600 s, business 3600 s
  M3 17:00 finn "Late order"        Ann replies Fri 09:30     59400 s, business 3600 s
                                    (Thu 17:00-17:30 + Fri 09:00-09:30)
  M4 12:00 gail "Address change"    no reply: open, due Fri 12:00, past target at 12:30
  and, left out: an auto-reply to dana at 09:00:05 (Auto-Submitted: auto-replied), Ann to
  Bob at 13:00 (internal), Ann to hank at 14:00, nobody waiting (outreach)
chat (chat_jsonl, team helpdesk; reply target 2 min)
  c1 09:00 customer, Cy Jones 09:01       60 s within
  c2 10:00 customer, HelpBot 10:00:05 (a bot: left out), Ann Smith 10:03      180 s late
  c3 11:00 customer, Cy Jones 11:01:30    90 s within
  c4 15:00 customer, the chat ended 15:05 unanswered: missed
phones (asterisk_queue_log, no team; hold_warn 5m, hold_max 13m, answer_within 20s)
  1.1 09:00 Agent/1001 (Ann) answers after 10 s, talks 120 s
  1.2 10:00 PJSIP/1002 (Bob) answers after 400 s, talks 60 s      (over hold_warn)
  1.3 11:00 02079460003 hangs up after 30 s: a callback inquiry V1 opened 11:00:30, open
  1.4 14:00 PJSIP/1003 (on no team) answers after 15 s, talks 200 s
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine

from monitor.config import Settings
from monitor.config_file import settings_from_mapping
from monitor.store.database import make_engine, prepare
from monitor.store.ingest import poll_source
from tests.mailboxes import message, write_mbox

DAY = date(2026, 11, 19)
NOW = datetime(2026, 11, 20, 12, 30, tzinfo=UTC)
# Every name the day's responders are known by: none may reach the metrics.
AGENT_NAMES = (
    "Ann Smith",
    "ann@example.com",
    "Agent/1001",
    "Bob Brown",
    "bob@example.com",
    "PJSIP/1002",
    "PJSIP/1003",
    "Cy Jones",
    "cy@example.com",
    "HelpBot",
)
TEAMS = {
    "billing": {
        "agents": [
            ["Ann Smith", "ann@example.com", "Agent/1001"],
            ["Bob Brown", "bob@example.com", "PJSIP/1002"],
        ]
    },
    "helpdesk": {"agents": [["Cy Jones", "cy@example.com"]]},
}


def at(hhmmss: str, day: int = 19) -> datetime:
    h, m, *s = (int(part) for part in hhmmss.split(":"))
    return datetime(2026, 11, day, h, m, s[0] if s else 0, tzinfo=UTC)


def mail() -> list[tuple[bytes, datetime]]:
    """The mailbox's messages with their arrival times (an mbox's `From ` lines)."""

    def customer(n: str, sender: str, subject: str, when: datetime) -> tuple[bytes, datetime]:
        raw = message(
            f"{n}@customer.test", sender=sender, to=["help@example.com"], subject=subject, date=when
        )
        return raw, when

    def reply(
        n: str, agent: str, to: str, subject: str, when: datetime, answers: str | None = None
    ) -> tuple[bytes, datetime]:
        raw = message(
            f"{n}@example.com",
            sender=agent,
            to=[to],
            subject=subject,
            date=when,
            in_reply_to=None if answers is None else f"{answers}@customer.test",
        )
        return raw, when

    auto = message(
        "auto1@example.com",
        sender="help@example.com",
        to=["dana@customer.test"],
        subject="We got your message",
        date=at("09:00:05"),
        in_reply_to="m1@customer.test",
        headers={"Auto-Submitted": "auto-replied"},
    )
    return [
        customer("m1", "dana@customer.test", "Invoice copy", at("09:00")),
        (auto, at("09:00:05")),
        reply("r1", "ann@example.com", "dana@customer.test", "Re: Invoice copy", at("09:30"), "m1"),
        customer("m2", "eve@customer.test", "Refund", at("10:00")),
        reply("r2", "cy@example.com", "eve@customer.test", "Re: Refund", at("11:00"), "m2"),
        customer("m4", "gail@customer.test", "Address change", at("12:00")),
        reply("i1", "ann@example.com", "bob@example.com", "Lunch?", at("13:00")),
        reply("o1", "ann@example.com", "hank@customer.test", "Your order shipped", at("14:00")),
        customer("m3", "finn@customer.test", "Late order", at("17:00")),
        reply(
            "r3", "ann@example.com", "finn@customer.test", "Re: Late order", at("09:30", 20), "m3"
        ),
    ]


def chat() -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []

    def say(conversation: str, when: str, role: str, author: str, event: str = "message") -> None:
        lines.append(
            {
                "id": f"{conversation}-{len(lines)}",
                "conversation": conversation,
                "at": at(when).isoformat(),
                "author_role": role,
                "author": author,
                "event": event,
            }
        )

    say("c1", "09:00:00", "customer", "Ida")
    say("c1", "09:01:00", "agent", "Cy Jones")
    say("c2", "10:00:00", "customer", "Jo")
    say("c2", "10:00:05", "bot", "HelpBot")
    say("c2", "10:03:00", "agent", "Ann Smith")
    say("c3", "11:00:00", "customer", "Kim")
    say("c3", "11:01:30", "agent", "Cy Jones")
    say("c4", "15:00:00", "customer", "Lou")
    say("c4", "15:05:00", "customer", "Lou", event="ended")
    return lines


def queue_log() -> list[str]:
    t9 = int(at("09:00").timestamp())
    hour = 3600

    def q(offset: int, callid: str, agent: str, event: str, *data: object) -> str:
        return "|".join([str(t9 + offset), callid, "support", agent, event, *map(str, data)])

    return [
        q(0, "1.1", "NONE", "ENTERQUEUE", "", "02079460001", 1),
        q(10, "1.1", "Agent/1001", "CONNECT", 10, "9.1", 2),
        q(130, "1.1", "Agent/1001", "COMPLETECALLER", 10, 120, 1),
        q(hour, "1.2", "NONE", "ENTERQUEUE", "", "02079460002", 1),
        q(hour + 400, "1.2", "PJSIP/1002", "CONNECT", 400, "9.2", 2),
        q(hour + 460, "1.2", "PJSIP/1002", "COMPLETEAGENT", 400, 60, 1),
        q(2 * hour, "1.3", "NONE", "ENTERQUEUE", "", "02079460003", 1),
        q(2 * hour + 30, "1.3", "NONE", "ABANDON", 1, 1, 30),
        q(5 * hour, "1.4", "NONE", "ENTERQUEUE", "", "02079460004", 1),
        q(5 * hour + 15, "1.4", "PJSIP/1003", "CONNECT", 15, "9.4", 2),
        q(5 * hour + 215, "1.4", "PJSIP/1003", "COMPLETECALLER", 15, 200, 1),
    ]


def raw_config(database: str, *, agents: bool = True, **top: Any) -> dict[str, Any]:
    return {
        "timezone": "Europe/London",
        "database": database,
        "agents": {"domains": ["example.com"]},
        "teams": TEAMS,
        "reports": {"agents": agents},
        "calendars": {
            "office": {
                "timezone": "Europe/London",
                "hours": {d: ["09:00-17:30"] for d in ("mon", "tue", "wed", "thu", "fri")},
            }
        },
        "sources": [
            {
                "name": "mail",
                "kind": "mbox",
                "path": "mail.mbox",
                "team": "billing",
                "calendar": "office",
            },
            {"name": "chat", "kind": "chat_jsonl", "path": "chat.jsonl", "team": "helpdesk"},
            {"name": "phones", "kind": "asterisk_queue_log", "path": "queue_log"},
        ],
        **top,
    }


def write_files(folder: Path) -> None:
    write_mbox(folder / "mail.mbox", mail())
    lines = "".join(json.dumps(line) + "\n" for line in chat())
    (folder / "chat.jsonl").write_text(lines, encoding="utf-8")
    (folder / "queue_log").write_text("\n".join(queue_log()) + "\n", encoding="utf-8")


def write_config(folder: Path, database: str, **options: Any) -> Path:
    path = folder / "support-monitor.yaml"
    path.write_text(yaml.safe_dump(raw_config(database, **options)), encoding="utf-8")
    return path


def build_day(folder: Path, database: str, **options: Any) -> tuple[Settings, Engine]:
    """The day's files written and polled into `database`; the settings and the store."""
    write_files(folder)
    settings = settings_from_mapping(raw_config(database, **options), folder)
    engine = make_engine(database, folder)
    prepare(engine)
    for source in settings.sources:
        result = poll_source(engine, settings, source, now=NOW, clock=lambda: NOW)
        assert result.ok and not result.rejected, result.summary()
    return settings, engine


def day_bounds() -> tuple[datetime, datetime]:
    start = datetime(2026, 11, 19, tzinfo=UTC)
    return start, start + timedelta(days=1)
