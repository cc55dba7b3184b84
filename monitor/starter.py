"""`support-monitor init`: a short starter config with only the kinds of source asked for.

`config.example.yaml` documents every key; a first config needs a handful. What `init` writes
loads and validates as it is (a test loads it for every kind and for all of them together):
the values a user must supply are placeholders marked `CHANGE ME`, and secrets are `${NAME}`
references to the environment, never values in the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from monitor.errors import SupportMonitorError
from monitor.measure.events import Channel

MARK = "CHANGE ME"
DEFAULT_KINDS = ("imap",)


@dataclass(frozen=True)
class Starter:
    """One kind's source entry: its name, what it reads, its keys (as YAML lines, commented),
    and the environment variables they refer to."""

    name: str
    reads: str
    channel: Channel
    lines: tuple[str, ...]
    secrets: tuple[str, ...] = ()


# Paths are the usual places of each system's files, or relative to the config's folder; every
# value a site must supply carries the mark.
STARTERS: dict[str, Starter] = {
    "imap": Starter(
        "support-mail",
        "a mailbox over IMAP: headers only, nothing is marked read or moved",
        Channel.EMAIL,
        (
            f"host: imap.example.com               # {MARK}: your IMAP server (TLS on port 993)",
            f"username: support@example.com        # {MARK}: the support mailbox",
            "password: ${SUPPORT_IMAP_PASSWORD}   # from the environment, never in this file",
            "folders: [INBOX]                     # where customers' mail arrives",
            "sent_folder: auto                    # our replies: the \\Sent special-use folder",
        ),
        ("SUPPORT_IMAP_PASSWORD",),
    ),
    "mbox": Starter(
        "mail-archive",
        "mbox files (Google Takeout, Thunderbird, /var/mail)",
        Channel.EMAIL,
        (
            f"path: mail/inbox.mbox                # {MARK}: customers' mail (a file or a glob)",
            f"sent_path: mail/sent.mbox            # {MARK}: our replies (null: none)",
        ),
    ),
    "maildir": Starter(
        "support-maildir",
        "a Maildir on disk (Dovecot, Courier, offlineimap)",
        Channel.EMAIL,
        (
            f"path: /var/vmail/example.com/support/Maildir   # {MARK}: the mailbox's Maildir",
            "folders: [INBOX]                     # INBOX or Maildir++ subfolder names",
            "sent_folder: auto                    # our replies: .Sent, .Sent Items, ...",
        ),
    ),
    "asterisk_queue_log": Starter(
        "phones",
        "Asterisk's queue_log: every queued call, its hold and outcome",
        Channel.PHONE,
        (
            f"path: /var/log/asterisk/queue_log    # {MARK} if yours is elsewhere",
            "format: flat                         # flat | csv (a table export)",
        ),
    ),
    "asterisk_cdr": Starter(
        "pbx-calls",
        "Asterisk's CDR CSV: missed calls to return, and the callbacks",
        Channel.PHONE,
        (
            f"path: /var/log/asterisk/cdr-csv/Master.csv   # {MARK} if yours is elsewhere",
            "layout: auto                         # auto | cdr_csv | cdr_custom",
            f"queue: support                       # {MARK}: the queue label of inbound calls",
        ),
    ),
    "call_csv": Starter(
        "call-log",
        "call-log CSV exports of a hosted phone system",
        Channel.PHONE,
        (
            f"path: exports/calls-*.csv            # {MARK}: your exports (a file or a glob)",
            f"columns:                             # {MARK}: our key -> your export's header",
            "  entered: Start Time                # required: when the call came in",
            "  answered: Answer Time",
            "  ended: End Time",
            "  caller: From",
            "  direction: Direction",
            'time_format: [iso]                   # or strptime formats: "%d/%m/%Y %H:%M:%S"',
            "# preset: aircall                    # instead of columns: aircall | 3cx",
        ),
    ),
    "answering_service_csv": Starter(
        "answering-service",
        "an answering service's message log; a filled callback column is the callback",
        Channel.ANSWERING_SERVICE,
        (
            f"path: exports/answering-service.csv  # {MARK}: the service's log",
            f"columns:                             # {MARK}: our key -> the log's header",
            "  taken_at: Taken                    # required: when the message was taken",
            "  callback_number: Call back on      # or caller:",
            "  callback_at: Returned              # empty: not returned yet",
            'time_format: [iso]                   # or strptime formats: "%Y-%m-%d %H:%M"',
        ),
    ),
    "answering_service_mail": Starter(
        "answering-mail",
        "an answering service's notification e-mails (one per message taken); bodies never stored",
        Channel.ANSWERING_SERVICE,
        (
            "from: imap                           # imap | mbox | maildir, with that kind's keys",
            f"host: imap.example.com               # {MARK}: the mailbox the notifications reach",
            f"username: messages@example.com       # {MARK}",
            "password: ${ANSWERING_IMAP_PASSWORD} # from the environment, never in this file",
            "folders: [INBOX]",
            f"senders: [answering.example]         # {MARK}: addresses or domains it sends from",
            f"patterns:                            # {MARK}: copy from a real notification",
            "  taken_at: 'Taken:[ \\t]*(?P<value>.+)'",
            "  callback_number: 'Call back on:[ \\t]*(?P<value>[+\\d ()-]{7,})'",
            'time_format: ["%d/%m/%Y %H:%M"]',
        ),
        ("ANSWERING_IMAP_PASSWORD",),
    ),
    "chat_jsonl": Starter(
        "website-chat",
        "a chat log, one JSON object a line (conversation, at, author_role)",
        Channel.CHAT,
        (f"path: chats/*.jsonl                  # {MARK}: your chat logs (a file or a glob)",),
    ),
    "slack_export": Starter(
        "slack",
        "a Slack workspace export (zip or folder), chosen channels",
        Channel.CHAT,
        (
            f"path: exports/slack-*.zip            # {MARK}: the export (zip, folder or glob)",
            f"channels: [support]                  # {MARK}: the channels customers ask in",
        ),
    ),
    "zendesk_chat": Starter(
        "zendesk-chat",
        "Zendesk Chat transcripts (JSON or JSONL)",
        Channel.CHAT,
        (f"path: exports/zendesk-chats.json     # {MARK}: the transcripts (a file or a glob)",),
    ),
    "livechat": Starter(
        "livechat",
        "LiveChat archives (JSON)",
        Channel.CHAT,
        (f"path: exports/livechat-archive.json  # {MARK}: the archives (a file or a glob)",),
    ),
}


class StarterError(SupportMonitorError):
    """`--kinds` names a kind there is no starter for."""


def parse_kinds(text: str | None, known: list[str]) -> list[str]:
    """`imap,call_csv` as a list, in order, each once; StarterError naming an unknown one."""
    if text is None:
        return list(DEFAULT_KINDS)
    kinds = list(dict.fromkeys(k.strip() for k in text.split(",") if k.strip()))
    if not kinds:
        raise StarterError("--kinds: name at least one kind")
    for kind in kinds:
        if kind not in known:
            raise StarterError(f"--kinds: unknown kind {kind!r} (known: {', '.join(known)})")
        if kind not in STARTERS:
            raise StarterError(f"--kinds: no starter for {kind!r} yet; see config.example.yaml")
    return kinds


def local_zone() -> str | None:
    """This machine's IANA zone when it can be told (`TZ`, or where /etc/localtime points)."""
    candidates = [os.environ.get("TZ", "").removeprefix(":")]
    try:
        candidates.append(str(Path("/etc/localtime").readlink()).partition("zoneinfo/")[2])
    except OSError:
        pass
    for name in candidates:
        if name and "/" in name:
            try:
                ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
            return name
    return None


def render(kinds: list[str], zone: str | None = None, file: str = "support-monitor.yaml") -> str:
    """The starter config for `kinds` (see `parse_kinds`) to be written to `file`, as YAML."""
    starters = [(kind, STARTERS[kind]) for kind in kinds]
    channels = {starter.channel for _, starter in starters}
    out = [
        "# Support Monitor: a starter configuration, written by",
        f"# `support-monitor init --kinds {','.join(kinds)}`.",
        "#",
        f"# Lines marked {MARK} hold placeholders: put your own values there. Secrets come",
        "# from the environment (${NAME}): set those variables, or use the *_file keys. Every",
        "# other key, with its default, is in config.example.yaml and docs/configuration.md.",
        f"# Then: support-monitor --config {file} check",
        "",
        "# The zone your support day is counted in (an IANA name).",
        f"timezone: {zone or 'UTC'}    # {MARK} if not your team's zone (e.g. Europe/London)",
        "",
        "# Where measurements are kept: a SQLite file beside this one (or PostgreSQL).",
        "database: sqlite:///support-monitor.db",
        "",
    ]
    if channels & {Channel.EMAIL, Channel.CHAT}:
        out += [
            '# Who is "us": mail and chat from these addresses or domains is the agents\' side.',
            "agents:",
            f"  domains: [example.com]               # {MARK}: your company's mail domain",
            "",
        ]
    out += ["# Targets for every source (a source may set its own under `targets:`).", "targets:"]
    if channels - {Channel.CHAT}:
        out.append(
            "  reply_within: 24h                    # reply to mail, return calls within this"
        )
    if Channel.CHAT in channels:
        out.append("  chat: {reply_within: 2m}             # a live chat is answered within this")
    if Channel.PHONE in channels:
        out += [
            "  hold_warn: 5m                        # a caller holding longer is a warning...",
            "  hold_max: 13m                        # ... and longer than this is critical",
        ]
    out += ["", "sources:"]
    for kind, starter in starters:
        out += [
            f"  # {starter.reads}",
            f"  - name: {starter.name}",
            f"    kind: {kind}",
            *(f"    {line}" for line in starter.lines),
            "",
        ]
    out += [
        "# Prometheus scrapes /metrics here (loopback; 0.0.0.0:9742 to be scraped from elsewhere).",
        "metrics:",
        "  listen: 127.0.0.1:9742",
        "",
        "# Next: the daily digest (digest:), alerts (alerts:) and the mail server they use (smtp:)",
        "# are in config.example.yaml.",
    ]
    return "\n".join(out) + "\n"


def secrets(kinds: list[str]) -> list[str]:
    """The environment variables the starter config of `kinds` refers to."""
    return list(dict.fromkeys(name for kind in kinds for name in STARTERS[kind].secrets))


def write(path: Path, text: str) -> None:
    """Write `text` to a new file at `path`; FileExistsError if there is one (never
    overwritten: `x` mode creates the file or fails, with no moment where both could happen)."""
    with path.open("x", encoding="utf-8") as handle:
        handle.write(text)
