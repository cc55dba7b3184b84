"""A call centre's Asterisk queue_log, generated: the data of bench/queue_log_import.py.

Shaped like a busy site's log, not like a tidy one: callers arrive in opening hours (weekdays
08:00-18:00 UTC, some 1,300 a day over three queues), 30% of them leave unanswered (ABANDON,
EXITWITHTIMEOUT after the queue's 300 s timeout, EXITWITHKEY, EXITEMPTY), 3% withhold their
number, 30% rang in the last days already (their number written as E.164, nationally or without
the plus, as different trunks do), 6% are transferred (BLINDTRANSFER, and ATTENDEDTRANSFER with
each of its three methods, whose field count varies), agents miss rings (RINGNOANSWER) and take
breaks (PAUSE/UNPAUSE). Lines are in time order, so the lines of callers in the queue at the
same time interleave as Asterisk writes them. A million lines hold about 281,000 calls and
82,000 unanswered calls from a number that can be called back.
"""

from __future__ import annotations

import heapq
import random
from bisect import bisect
from collections import deque
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path

# 2025-11-21 09:00 UTC, a Friday. A million lines span some ten months, and every line must
# lie in the past when it is imported: a record dated after now + `plausible_times.ahead` is
# rejected as implausible, which made the comparison with the baseline fail.
START = 1_763_715_600
DAY = 86_400
OPENS, CLOSES = 8 * 3600, 18 * 3600  # the queues take calls 08:00-18:00 UTC on weekdays
MEAN_GAP_S = 28  # between callers in opening hours: some 1,300 calls a day
QUEUES = ("support", "sales", "billing")
AGENTS = tuple(f"PJSIP/2{n:02d}" for n in range(1, 25))
# How each call ends, and its share: 30% leave unanswered (abandon, timeout, exit key, empty).
ENDINGS = {
    "COMPLETECALLER": 0.34,
    "COMPLETEAGENT": 0.30,
    "BLINDTRANSFER": 0.03,
    "ATTENDEDTRANSFER": 0.03,
    "ABANDON": 0.22,
    "EXITWITHTIMEOUT": 0.04,
    "EXITWITHKEY": 0.025,
    "EXITEMPTY": 0.015,
}
UNANSWERED = frozenset({"ABANDON", "EXITWITHTIMEOUT", "EXITWITHKEY", "EXITEMPTY"})
_VERBS = tuple(ENDINGS)
_CUMULATIVE = tuple(accumulate(ENDINGS.values()))
WITHHELD_SHARE = 0.03  # callers with no number to call back: "anonymous" or blank
REPEAT_SHARE = 0.30  # callers who rang in the last days (their number, maybe written otherwise)
QUEUE_TIMEOUT_S = 300


@dataclass
class Generated:
    lines: int = 0
    calls: int = 0
    unanswered: int = 0
    callbacks: int = 0  # unanswered calls from a number that can be called back
    repeat_calls: int = 0


class Site:
    """A call centre's callers and agents, drawn from one seeded random generator."""

    def __init__(self, seed: int) -> None:
        self.rnd = random.Random(seed)
        self.recent: deque[str] = deque(maxlen=3000)  # subscriber digits of recent callers

    def caller(self, stats: Generated) -> str:
        rnd = self.rnd
        roll = rnd.random()
        if roll < WITHHELD_SHARE:
            return "anonymous" if roll < WITHHELD_SHARE / 2 else ""
        if roll < WITHHELD_SHARE + REPEAT_SHARE and self.recent:
            digits = rnd.choice(self.recent)
            stats.repeat_calls += 1
        else:
            digits = f"{rnd.choice(('20', '161', '121', '7700'))}{rnd.randrange(10**7):07d}"
            self.recent.append(digits)
        # Trunks write the same number as E.164, nationally or without the plus.
        return rnd.choice((f"+44{digits}", f"0{digits}", f"44{digits}"))

    def call(self, number: int, at: int, stats: Generated) -> list[tuple[int, str]]:
        """The lines of caller `number`, who enters a queue at `at`: (time, line) pairs."""
        rnd = self.rnd
        callid, queue = f"{at}.{number}", QUEUES[number % 3]

        def line(when: int, agent: str, rest: str) -> tuple[int, str]:
            return when, f"{when}|{callid}|{queue}|{agent}|{rest}"

        caller = self.caller(stats)
        verb = _VERBS[bisect(_CUMULATIVE, rnd.random() * _CUMULATIVE[-1])]
        position = rnd.randint(1, 6)
        if verb == "EXITWITHTIMEOUT":
            wait = QUEUE_TIMEOUT_S
        elif verb == "EXITEMPTY":
            wait = rnd.randint(0, 3)
        else:
            wait = int(rnd.expovariate(1 / (80 if verb in UNANSWERED else 40)))
        out = [line(at, "NONE", f"ENTERQUEUE||{caller}|{position}")]
        for ring in range(min(wait // 20, 4)):  # an agent rang for 15 s and did not answer
            if rnd.random() < 0.5:
                out.append(line(at + 20 * ring + 15, rnd.choice(AGENTS), "RINGNOANSWER|15000"))
        end = at + wait
        stats.calls += 1
        if verb in UNANSWERED:
            stats.unanswered += 1
            stats.callbacks += caller not in ("", "anonymous")
            data = f"{position}|{position}|{wait}"
            if verb == "EXITWITHKEY":
                data = f"{rnd.choice('0*#')}|{data}"
            out.append(line(end, "NONE", f"{verb}|{data}"))
            return out
        agent = rnd.choice(AGENTS)
        talk = int(rnd.lognormvariate(5.2, 0.8)) + 5
        out.append(line(end, agent, f"CONNECT|{wait}|{end}.{number % 997}|{rnd.randint(1, 9)}"))
        if verb == "BLINDTRANSFER":
            data = f"{rnd.choice(('300', '301', '4410'))}|from-internal|{wait}|{talk}|{position}"
        elif verb == "ATTENDEDTRANSFER":  # the method has one or two data fields
            method = rnd.choice(
                (
                    f"BRIDGE|{rnd.getrandbits(64):016x}-{rnd.getrandbits(32):08x}",
                    "APP|VoiceMail",
                    f"LINK|{agent}-{number % 4096:08x}|PJSIP/300-{number % 8192:08x}",
                )
            )
            data = f"{method}|{wait}|{talk}|{position}"
        else:
            data = f"{wait}|{talk}|{position}"
        out.append(line(end + talk, agent, f"{verb}|{data}"))
        return out

    def agent_lines(self, at: int) -> list[tuple[int, str]]:
        """An agent's break: PAUSE, and UNPAUSE a quarter of an hour later."""
        agent, queue = self.rnd.choice(AGENTS), self.rnd.choice(QUEUES)
        back = at + 900
        return [
            (at, f"{at}|NONE|{queue}|{agent}|PAUSE|break"),
            (back, f"{back}|NONE|{queue}|{agent}|UNPAUSE|break"),
        ]


def next_arrival(rnd: random.Random, at: int) -> int:
    """The next caller's arrival after `at`, in opening hours (weekdays 08:00-18:00 UTC)."""
    at += 1 + int(rnd.expovariate(1 / MEAN_GAP_S))
    while at % DAY >= CLOSES or at % DAY < OPENS or (at // DAY + 3) % 7 >= 5:
        at = (at // DAY + 1) * DAY + OPENS + rnd.randint(0, 120)
    return at


def generate(path: Path, lines: int) -> Generated:
    """Write about `lines` lines in time order (callers' lines interleave, as Asterisk writes
    them); return what they hold."""
    site = Site(4)
    stats = Generated()
    pending: list[tuple[int, int, str]] = []  # (time, order, line): written once time passes
    order = 0
    at = START
    with path.open("w") as out:
        while stats.lines + len(pending) < lines:
            at = next_arrival(site.rnd, at)
            chunk = []
            while pending and pending[0][0] <= at:
                chunk.append(heapq.heappop(pending)[2])
            if chunk:
                out.write("\n".join(chunk) + "\n")
                stats.lines += len(chunk)
            block = site.call(stats.calls + 1, at, stats)
            if site.rnd.random() < 0.02:
                block += site.agent_lines(at)
            for when, line in block:
                order += 1
                heapq.heappush(pending, (when, order, line))
        rest = [heapq.heappop(pending)[2] for _ in range(len(pending))]
        out.write("\n".join(rest) + "\n")
        stats.lines += len(rest)
    return stats


def append_calls(path: Path, first: int, count: int) -> None:
    """Append `count` finished calls, numbered from `first`, after the file's last line (their
    lines in time order)."""
    last = int(path.read_bytes()[-200:].splitlines()[-1].split(b"|")[0])
    site, stats, lines = Site(first), Generated(), []
    for number in range(first, first + count):
        last += 60
        lines += site.call(number, last, stats)
    with path.open("a") as out:
        out.write("".join(f"{line}\n" for _, line in sorted(lines, key=lambda pair: pair[0])))
