"""A moment of a working day for the status page tests, stored through the real ingest path.

The day of tests/digest_day.py seen at 16:30 on Thursday 19 November 2026 (Europe/London = UTC),
with two more things that need someone now:
- a caller in the `support` queue since 16:21, waiting 9 minutes (over hold_warn 5m, under
  hold_max 13m), with a hostile caller id;
- an answering-service message taken on Wed 18 at 10:00 and not returned (past its 24h target
  since 10:00 today), from a hostile caller name with a hostile urgency (its subject).
Already overdue from the digest's day: the chat c3 (10:15, 2m target) from a hostile name, and
AS-0 from "O'Brien & Sons" (Tue 17).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from monitor.config import Settings
from tests.digest_day import T9, build_day, write_files

NOW = datetime(2026, 11, 19, 16, 30, tzinfo=UTC)
WAITING_CALLER = "0207<b>946</b>0777"
LATE_CALLER = "<a href=//evil.example>Mallory</a>"
LATE_SUBJECT = "<script>document.title='owned'</script>"
HOSTILE = (WAITING_CALLER, LATE_CALLER, LATE_SUBJECT)


def write_moment(folder: Path) -> None:
    write_files(folder)
    entered = T9 + 7 * 3600 + 21 * 60  # 16:21
    with (folder / "queue_log").open("a", encoding="utf-8") as log:
        log.write(f"{entered}|1.9|support|NONE|ENTERQUEUE||{WAITING_CALLER}|1\n")
    with (folder / "answering.csv").open("a", encoding="utf-8") as csv:
        csv.write(f'AS-9,2026-11-18 10:00,"{LATE_CALLER}",+44 7700 900099,"{LATE_SUBJECT}",\n')


def build_moment(folder: Path, database: str, **top: Any) -> tuple[Settings, Engine]:
    """The files written and polled at NOW into `database`; returns the settings and store."""
    return build_day(folder, database, now=NOW, write=write_moment, **top)
