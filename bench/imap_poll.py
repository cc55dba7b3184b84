"""An IMAP poll of 20,000 messages against a bare header fetch of the same messages (SPEC §10).

    .venv/bin/python bench/imap_poll.py [--quick] [--messages N] [--rounds R]

Starts a private Dovecot on loopback (TLS with a throwaway CA, as the tests do: needs
dovecot-imapd and openssl), seeds one mailbox over IMAP MULTIAPPEND with N/2 customer messages
in INBOX and N/2 replies in Sent (explicit INTERNALDATEs), then times, each in its own child
process and alternating for R rounds:

- ours: `support-monitor poll` of an `imap` source into a new SQLite database (header parsing,
  classification, threading, inquiries, tallies, a cursor per batch of 1,000);
- baseline: a minimal imapclient script that logs in the same way and fetches the same header
  fields and INTERNALDATE in batches of 1,000 UIDs, without parsing them.

It prints the median time of each, the ratio (target <= 2.0) and, last, `RESULT {json}` for
bench/run.py. `--quick` uses 2,000 messages.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from _children import Child, median_child, run_child  # noqa: E402
from servers import DovecotServer, start_dovecot  # noqa: E402

from connectors.imap import HEADER_ITEM  # noqa: E402

TARGET_RATIO = 2.0
START = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)

BASELINE = r"""
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 messages")
    parser.add_argument("--messages", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    messages = args.messages or (2_000 if args.quick else 20_000)
    server = start_dovecot()
    try:
        user = server.new_user()
        started = time.perf_counter()
        seed(server, user, messages)
        print(f"seeded {messages:,} messages over IMAP in {time.perf_counter() - started:.1f} s")
        with tempfile.TemporaryDirectory(prefix="bench-imap-") as scratch:
            folder = Path(scratch)
            script = folder / "baseline.py"
            script.write_text(BASELINE)
            baseline = [
                sys.executable,
                str(script),
                server.host,
                str(server.port),
                user,
                server.password,
                str(server.ca_file),
                HEADER_ITEM,
            ]
            run_child(baseline)  # warm Dovecot's caches, so neither side pays for a cold start
            ours_runs: list[Child] = []
            baseline_runs: list[Child] = []
            for round_ in range(args.rounds):
                config = folder / f"bench-{round_}.yaml"
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
                    "database": f"sqlite:///{folder}/ours-{round_}.db",
                    "agents": {"addresses": ["support@example.com"]},
                    "sources": [source],
                }
                config.write_text(yaml.safe_dump(settings))
                baseline_runs.append(run_child(baseline))
                ours_runs.append(
                    run_child([sys.executable, "-m", "monitor", "--config", str(config), "poll"])
                )
    finally:
        server.stop()
    ours, baseline = median_child(ours_runs), median_child(baseline_runs)
    ratio = ours.wall_s / baseline.wall_s
    print(f"ours:     {ours.wall_s:8.2f} s  CPU {ours.cpu_s:6.2f} s  (support-monitor poll)")
    print(
        f"baseline: {baseline.wall_s:8.2f} s  CPU {baseline.cpu_s:6.2f} s  (bare imapclient fetch)"
    )
    print(
        f"ratio:    {ratio:8.2f}   target <= {TARGET_RATIO} (wall, median of {args.rounds}); "
        f"CPU ratio {ours.cpu_s / baseline.cpu_s:.2f}"
    )
    result = {
        "name": f"IMAP poll, {messages:,} messages",
        "ours_s": round(ours.wall_s, 3),
        "baseline_s": round(baseline.wall_s, 3),
        "ratio": round(ratio, 3),
        "target": TARGET_RATIO,
        "extra": {
            "messages": messages,
            "ours_runs_s": [round(r.wall_s, 3) for r in ours_runs],
            "baseline_runs_s": [round(r.wall_s, 3) for r in baseline_runs],
            "ours_cpu_s": round(ours.cpu_s, 3),
            "baseline_cpu_s": round(baseline.cpu_s, 3),
        },
    }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
