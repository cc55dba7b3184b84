"""An IMAP poll of 20,000 messages against a bare imaplib header fetch of the same messages.

    .venv/bin/python bench/imap_poll.py [--quick] [--messages N] [--rounds R]

Starts a private Dovecot on loopback (TLS with a throwaway CA, as the tests do: needs
dovecot-imapd and openssl), seeds one mailbox over IMAP MULTIAPPEND with N/2 customer messages
in INBOX and N/2 replies in Sent (explicit INTERNALDATEs), then times, each in its own child
process and alternating for R rounds (7, `--quick` 3):

- floor: the standard library's `imaplib` (debug off, as it is by default) logging in the same
  way and fetching the same header fields and INTERNALDATE in batches of 1,000 UIDs, with no
  parsing beyond imaplib's own framing of the answer (lines and literals);
- reference: the same fetch with `IMAPClient.fetch`, whose response parser makes most of the
  difference between it and the floor (shown beside it, not the target);
- ours: `support-monitor poll` of an `imap` source into a new SQLite database (header parsing,
  classification, threading, inquiries, tallies, a cursor per batch of 1,000), read in a
  forked child process while the poll's own process stores (the CLI does so when it can);
- ours again, on the same database: nothing new, so start-up, login and the folders' EXAMINE
  and SEARCH only. What the first poll takes beyond it is the fetching, parsing and storing of
  the messages (shown as "beyond start-up", for reference: start-up is its own row).

Before the timed rounds each script runs once (it also warms Dovecot's caches) and must have
fetched every message; after them our database must hold every message. It prints the median
time of each, the ratio (target <= 2.0: the median of the rounds' own ratios ours / floor, as
this shared machine's speed drifts from minute to minute) and, last, `RESULT {json}` for
bench/run.py, whose `extra` holds the reference's figures, `ratio_ok` and `targets`. `--quick`
uses 2,000 messages.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
# The project root, not tests/ (whose own `connectors` package would hide ours): the test
# servers are imported as `tests.servers`.
sys.path.insert(0, str(ROOT))

from _children import Child, byte_compile, median_child, run_child  # noqa: E402

from connectors.mail.imap import HEADER_ITEM  # noqa: E402
from tests.servers import DovecotServer, start_dovecot  # noqa: E402

TARGET_RATIO = 2.0
START = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)

FLOOR = r"""
import imaplib, ssl, sys
host, port, user, password, ca_file, item = sys.argv[1:7]
context = ssl.create_default_context(cafile=ca_file)
imap = imaplib.IMAP4_SSL(host, int(port), ssl_context=context, timeout=30)
imap.login(user, password)
fetched = 0
for folder in ("Sent", "INBOX"):
    imap.select(folder, readonly=True)
    uids = imap.uid("SEARCH", "UID", "1:*")[1][0].split()
    for start in range(0, len(uids), 1000):
        batch = b",".join(uids[start:start + 1000]).decode()
        answer = imap.uid("FETCH", batch, f"({item} INTERNALDATE)")[1]
        fetched += sum(isinstance(part, tuple) for part in answer)
imap.logout()
print(fetched)
"""

REFERENCE = r"""
import ssl, sys
from imapclient import IMAPClient
host, port, user, password, ca_file, item = sys.argv[1:7]
context = ssl.create_default_context(cafile=ca_file)
client = IMAPClient(host, port=int(port), ssl=True, ssl_context=context, timeout=30)
client.login(user, password)
client.normalise_times = False
fetched = 0
for folder in ("Sent", "INBOX"):
    client.select_folder(folder, readonly=True)
    uids = client.search(["UID", "1:*"])
    for start in range(0, len(uids), 1000):
        fetched += len(client.fetch(uids[start:start + 1000], [item, "INTERNALDATE"]))
client.logout()
print(fetched)
"""


def mail(n: int, *, reply: bool) -> bytes:
    """A realistic header block: customers from 50 domains, 500 people, replies threaded."""
    customer = f"customer{n % 500}@shop{n % 50}.test"
    question_id = f"<q{n}.{n * 7919 % 10007}@mail.shop.test>"
    own_id = f"<r{n}.{n * 7919 % 10007}@example.com>" if reply else question_id
    sent = START + timedelta(minutes=n + (30 if reply else 0))
    lines = [
        f"From: {'Support <support@example.com>' if reply else f'Customer {n} <{customer}>'}",
        f"To: {customer if reply else 'support@example.com'}",
        f"Subject: {'Re: ' if reply else ''}Order {n} has not arrived",
        f"Date: {format_datetime(sent)}",
        f"Message-ID: {own_id}",
        "MIME-Version: 1.0",
        'Content-Type: text/plain; charset="utf-8"',
        f"Received: from mx{n % 7}.shop.test by mx.example.com; {format_datetime(sent)}",
    ]
    if reply:
        lines += [f"In-Reply-To: {question_id}", f"References: {question_id}"]
    body = "Hello,\r\n\r\nWhere is my order? It was due last week.\r\n" * 4
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def seed(server: DovecotServer, user: str, messages: int) -> None:
    client = server.connect(user)
    try:
        half = messages // 2
        for folder, reply in (("INBOX", False), ("Sent", True)):
            batch = []
            for n in range(half):
                arrived = START + timedelta(minutes=n + (31 if reply else 0))
                batch.append({"msg": mail(n, reply=reply), "date": arrived})
                if len(batch) == 1000:
                    client.multiappend(folder, batch)
                    batch = []
            if batch:
                client.multiappend(folder, batch)
    finally:
        client.logout()


def fetched_by(command: list[str], messages: int) -> None:
    """Run a fetch script once (untimed) and check that it fetched every message."""
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    count = done.stdout.strip().splitlines()[-1:] if done.returncode == 0 else []
    if count != [str(messages)]:
        why = (done.stderr or done.stdout).strip().splitlines()[-1:]
        raise SystemExit(f"{Path(command[1]).name} fetched {count or why}, not {messages}")


def stored_messages(database: Path) -> int:
    with closing(sqlite3.connect(database)) as db:
        return int(db.execute("SELECT count(*) FROM message").fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 messages")
    parser.add_argument("--messages", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None, help="runs of each (7; quick 3)")
    args = parser.parse_args()
    messages = args.messages or (2_000 if args.quick else 20_000)
    # The floor is mostly the server's time, which drifts on a shared machine: more rounds.
    rounds = args.rounds or (3 if args.quick else 7)
    server = start_dovecot()
    try:
        user = server.new_user()
        started = time.perf_counter()
        seed(server, user, messages)
        print(f"seeded {messages:,} messages over IMAP in {time.perf_counter() - started:.1f} s")
        with tempfile.TemporaryDirectory(prefix="bench-imap-") as scratch:
            folder = Path(scratch)
            login = [server.host, str(server.port), user, server.password, str(server.ca_file)]
            commands = {}
            for name, text in (("floor", FLOOR), ("reference", REFERENCE)):
                script = folder / f"{name}.py"
                script.write_text(text)
                commands[name] = [sys.executable, str(script), *login, HEADER_ITEM]
                fetched_by(commands[name], messages)
            byte_compile()
            runs: dict[str, list[Child]] = {"floor": [], "reference": [], "ours": [], "again": []}
            for round_ in range(rounds):
                config = folder / f"bench-{round_}.yaml"
                database = folder / f"ours-{round_}.db"
                source = {
                    "name": "inbox",
                    "kind": "imap",
                    "host": server.host,
                    "port": server.port,
                    "security": "tls",
                    "username": user,
                    "password": server.password,
                    "ca_file": str(server.ca_file),
                }
                settings = {
                    "database": f"sqlite:///{database}",
                    "agents": {"addresses": ["support@example.com"]},
                    "sources": [source],
                }
                config.write_text(yaml.safe_dump(settings))
                runs["floor"].append(run_child(commands["floor"]))
                runs["reference"].append(run_child(commands["reference"]))
                poll = [sys.executable, "-m", "monitor", "--config", str(config), "poll"]
                runs["ours"].append(run_child(poll))
                runs["again"].append(run_child(poll))
            stored = stored_messages(database)
            if stored != messages:
                raise SystemExit(f"our poll stored {stored:,} messages, not {messages:,}")
    finally:
        server.stop()
    ours, floor, reference, again = (
        median_child(runs[k]) for k in ("ours", "floor", "reference", "again")
    )
    beyond = [o.wall_s - a.wall_s for o, a in zip(runs["ours"], runs["again"], strict=True)]
    beyond_cpu = [o.cpu_s - a.cpu_s for o, a in zip(runs["ours"], runs["again"], strict=True)]
    ratios = [o.wall_s / f.wall_s for o, f in zip(runs["ours"], runs["floor"], strict=True)]
    ratio = statistics.median(ratios)
    by_reference = statistics.median(
        o.wall_s / r.wall_s for o, r in zip(runs["ours"], runs["reference"], strict=True)
    )
    reference_ratio = statistics.median(
        r.wall_s / f.wall_s for r, f in zip(runs["reference"], runs["floor"], strict=True)
    )

    def line(label: str, child: Child, what: str, name: str) -> str:
        each = " ".join(f"{c.wall_s:.2f}" for c in runs[name])
        return f"{label:10}{child.wall_s:8.2f} s  CPU {child.cpu_s:6.2f} s  ({what}; runs {each})"

    print(line("ours:", ours, "support-monitor poll", "ours"))
    print(line("floor:", floor, "bare imaplib header fetch", "floor"))
    print(line("imapclient:", reference, "IMAPClient.fetch of the same", "reference"))
    print(line("again:", again, "the same poll with nothing new: start-up and login", "again"))
    print(
        f"beyond start-up: {statistics.median(beyond):.2f} s  CPU "
        f"{statistics.median(beyond_cpu):.2f} s  (ours - again, by round; "
        f"{statistics.median(b / f.wall_s for b, f in zip(beyond, runs['floor'], strict=True)):.2f}"
        "x the floor)"
    )
    print(
        f"ratio:    {ratio:8.2f}   target <= {TARGET_RATIO} (median of the rounds' "
        f"{' '.join(f'{r:.2f}' for r in ratios)}); CPU ratio {ours.cpu_s / floor.cpu_s:.2f}; "
        f"ours / imapclient {by_reference:.2f}, imapclient / floor {reference_ratio:.2f}"
    )
    result = {
        "name": f"IMAP poll, {messages:,} messages",
        "ours_s": round(ours.wall_s, 3),
        "baseline_s": round(floor.wall_s, 3),
        "ratio": round(ratio, 3),
        "target": TARGET_RATIO,
        "extra": {
            "messages": messages,
            "ratios": [round(r, 3) for r in ratios],
            "ours_runs_s": [round(r.wall_s, 3) for r in runs["ours"]],
            "baseline_runs_s": [round(r.wall_s, 3) for r in runs["floor"]],
            "ours_cpu_s": round(ours.cpu_s, 3),
            "baseline_cpu_s": round(floor.cpu_s, 3),
            "imapclient_s": round(reference.wall_s, 3),
            "imapclient_cpu_s": round(reference.cpu_s, 3),
            "imapclient_runs_s": [round(r.wall_s, 3) for r in runs["reference"]],
            "ratio_to_imapclient": round(by_reference, 3),
            "imapclient_to_floor": round(reference_ratio, 3),
            "again_s": round(again.wall_s, 3),
            "again_cpu_s": round(again.cpu_s, 3),
            "beyond_startup_s": round(statistics.median(beyond), 3),
            "beyond_startup_cpu_s": round(statistics.median(beyond_cpu), 3),
            "ratio_ok": ratio <= TARGET_RATIO,
            "targets": {"ratio": f"<= {TARGET_RATIO:g}x the bare imaplib fetch"},
        },
    }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
