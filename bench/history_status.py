"""`GET /` (the status page) from a running service with a year of history and a large open
backlog.

    .venv/bin/python bench/history_status.py [--quick] [--seconds S] [--rebuild]

bench/history_metrics.py's benchmark for the status page: the same history (a year: 600,000
chat inquiries, 277,000 calls, some 83,000 open callback inquiries and 1,500 stale e-mails),
the same two services (that history, and the same site with nothing stored as the like-for-like
baseline), requested in turn a few times a second, beside `/healthz`. The service listens on
loopback, so the page needs no login. Target (a page costs what it shows: the day's rows, the
open backlog counted in its indexes and only its oldest read): a median under 50 ms with that
history. The last line is `RESULT {json}` for bench/run.py.
"""

from __future__ import annotations

from history_metrics import measure_page

LIMIT_S = 0.050

if __name__ == "__main__":
    measure_page("/", LIMIT_S, "GET / (status page) from run")
