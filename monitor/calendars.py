"""Business calendars: how much of a span was "open for business".

A reply target measured on the business clock (`reply_clock: business`) must not count the
weekend, a bank holiday or the night against the team. `BusinessCalendar` turns the
`calendars:` settings (weekly hours in a timezone, holidays, extra closed and open dates) into
open spans on the UTC timeline, and answers "how many open seconds lie between these instants"
and "when will this many open seconds have passed".

Everything is computed in UTC: each local date's wall-clock intervals are converted to UTC
instants first, because Python subtracts two aware datetimes sharing a tzinfo as wall clock,
which is an hour off across a DST change.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from monitor.config import WEEKDAYS, CalendarSettings, HolidaySettings

# A calendar closed for this many local days in a row is treated as never opening again, so
# `add_business_seconds` on a calendar with no hours returns None instead of looping forever.
HORIZON_DAYS = 400

if TYPE_CHECKING:
    import holidays as holiday_data

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)  # noqa: DTZ001 - local wall times are naive on purpose

Span = tuple[datetime, datetime]
Minutes = tuple[int, int]  # (start, end) in minutes after the local midnight of the start day


def _parse(interval: str) -> Minutes:
    """`09:00-17:00` -> (540, 1020); an end at or before the start is on the next day."""
    start = int(interval[0:2]) * 60 + int(interval[3:5])
    end = int(interval[6:8]) * 60 + int(interval[9:11])
    return (start, end + 1440 if end <= start else end)


def _utc(at: datetime, name: str) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {at.isoformat()}")
    return at.astimezone(UTC)


class BusinessCalendar:
    """Open hours on the UTC timeline; all returned datetimes are aware UTC."""

    def __init__(
        self,
        tz: tzinfo,
        weekly: Mapping[int, Sequence[Minutes]],
        holidays: HolidaySettings | None = None,
        closed: frozenset[date] = frozenset(),
        extra_open: Mapping[date, Sequence[Minutes]] | None = None,
    ) -> None:
        self._tz = tz
        self._weekly = {day: tuple(sorted(weekly.get(day, ()))) for day in range(7)}
        # One `holidays` object, extended a year at a time as dates are asked for (its
        # `expand`); building it here also rejects an unknown country now, not on an inquiry.
        self._holiday_source: holiday_data.HolidayBase | None = None
        if holidays is not None:
            # Imported here: only a calendar with holidays needs the data (and its import time).
            import holidays as holiday_data

            try:
                self._holiday_source = holiday_data.country_holidays(
                    holidays.country, subdiv=holidays.subdivision
                )
            except NotImplementedError as exc:  # how `holidays` reports an unknown country
                raise ValueError(f"no holiday data: {exc}") from exc
        self._closed = closed
        self._open = {day: tuple(sorted(spans)) for day, spans in (extra_open or {}).items()}
        self._holiday_years: dict[int, frozenset[date]] = {}
        # Local date -> its UTC spans. Ingest asks about the same recent days over and over, and
        # the zone conversions are the expensive part; one entry per day stays small for years.
        self._days: dict[date, tuple[Span, ...]] = {}

    @classmethod
    def from_settings(cls, settings: CalendarSettings) -> BusinessCalendar:
        """The calendar a `calendars:` entry describes; ValueError on an unknown country."""
        weekly = {
            WEEKDAYS.index(day): [_parse(i) for i in intervals]
            for day, intervals in settings.hours.items()
        }
        return cls(
            ZoneInfo(settings.timezone),
            weekly,
            holidays=settings.holidays,
            closed=frozenset(settings.closed),
            extra_open={day: [_parse(i) for i in spans] for day, spans in settings.open.items()},
        )

    @classmethod
    def always_open(cls) -> BusinessCalendar:
        """24x7 without holidays: business seconds equal calendar seconds."""
        return cls(UTC, {day: [(0, 1440)] for day in range(7)})

    def business_seconds(self, start: datetime, end: datetime) -> float:
        """Open time within [start, end), in seconds; 0.0 when end <= start."""
        # Summing timedeltas keeps whole microseconds exact, so f(a, c) == f(a, b) + f(b, c).
        total = sum((e - s for s, e in self.open_intervals(start, end)), timedelta())
        return total.total_seconds()

    def add_business_seconds(self, start: datetime, seconds: float) -> datetime | None:
        """The earliest t >= start with `business_seconds(start, t) == seconds` (to the µs).

        None when the calendar stays closed for `HORIZON_DAYS` days in a row before then.
        """
        if seconds < 0:
            raise ValueError(f"seconds must not be negative, got {seconds}")
        remaining = timedelta(seconds=seconds)
        at = _utc(start, "start")
        if not remaining:
            return at
        for s, e in self._spans(at, None):
            if remaining <= e - s:
                return s + remaining
            remaining -= e - s
        return None

    def is_open(self, at: datetime) -> bool:
        """Whether `at` is in open time; spans are half-open, so closing time itself is not."""
        return next(self.open_intervals(at, at + timedelta(microseconds=1)), None) is not None

    def open_intervals(self, start: datetime, end: datetime) -> Iterator[Span]:
        """The open spans intersecting [start, end), clipped to it, merged where they touch."""
        lo, hi = _utc(start, "start"), _utc(end, "end")
        pending: Span | None = None
        for s, e in self._spans(lo, hi):
            if s >= hi:
                break
            if pending is not None and s <= pending[1]:
                pending = (pending[0], e)
                continue
            if pending is not None:
                yield pending
            pending = (s, e)
        if pending is not None:
            yield (pending[0], min(pending[1], hi))

    def _spans(self, start: datetime, until: datetime | None) -> Iterator[Span]:
        """Disjoint open spans after `start`, in order, until the local date of `until`.

        Spans are trimmed rather than merged so the stream never waits on a 24x7 calendar.
        """
        # A shift crossing midnight belongs to the day before, so start one local day early.
        day = start.astimezone(self._tz).date() - timedelta(days=1)
        last = until.astimezone(self._tz).date() if until is not None else date.max
        reached, idle = start, 0
        # Without an end, give up after HORIZON_DAYS closed days; with one, the end bounds it.
        while day <= last and (until is not None or idle < HORIZON_DAYS):
            spans = self._day_spans(day)
            idle = 0 if spans else idle + 1
            for s, e in spans:
                s = max(s, reached)
                if e > s:
                    yield (s, e)
                    reached = e
            day += timedelta(days=1)

    def _day_spans(self, day: date) -> tuple[Span, ...]:
        spans = self._days.get(day)
        if spans is None:
            midnight = datetime.combine(day, time())
            wall = [
                (midnight + timedelta(minutes=a), midnight + timedelta(minutes=b))
                for a, b in self._minutes(day)
            ]
            converted = ((self._to_utc(a), self._to_utc(b)) for a, b in wall)
            # An interval wholly inside a DST gap collapses to nothing.
            spans = self._days[day] = tuple((s, e) for s, e in converted if e > s)
        return spans

    def _minutes(self, day: date) -> Sequence[Minutes]:
        # `closed` beats `open`: closing is the safe reading of a contradictory config (nobody is
        # blamed for a slow reply on a day someone also said was closed).
        if day in self._closed:
            return ()
        if day in self._open:
            return self._open[day]
        if day in self._holiday_dates(day.year):
            return ()
        return self._weekly[day.weekday()]

    def _holiday_dates(self, year: int) -> frozenset[date]:
        if self._holiday_source is None:
            return frozenset()
        found = self._holiday_years.get(year)
        if found is None:
            # Asking about one date makes the object compute that whole year. Keep each year as
            # a frozenset: then a membership test is a plain hash lookup, where the `holidays`
            # object parses its key on every check.
            self._holiday_source.get(date(year, 1, 1))
            found = frozenset(day for day in self._holiday_source if day.year == year)
            self._holiday_years[year] = found
        return found

    def _to_utc(self, wall: datetime) -> datetime:
        """The first instant at which the local clock reads `wall` or later.

        In the autumn fold a wall time happens twice; fold=0 picks the first. In the spring gap
        it never happens; the clock jumps past it at the transition, so that is when an
        interval starting or ending in the gap starts or ends. This keeps the mapping monotonic,
        so a span never ends before it starts.
        """
        # fold=0 reads a wall time with the offset in force before a transition, fold=1 after.
        # They differ only near one; `or timedelta()` is for mypy, ZoneInfo never returns None.
        before = self._tz.utcoffset(wall) or timedelta()
        after = self._tz.utcoffset(wall.replace(fold=1)) or timedelta()
        if before >= after:  # an ordinary time, or a fold (the offset drops) where fold=0 is first
            # Epoch arithmetic rather than .replace(tzinfo=UTC): this runs for every interval
            # endpoint of every day, and replace() is several times slower.
            return _EPOCH + (wall - before - _NAIVE_EPOCH)
        # A gap: `wall - after` lies before the transition and `wall - before` after it. Wall
        # times are whole minutes and offsets whole seconds, so bisect whole seconds to it.
        lo = int((wall - after - _NAIVE_EPOCH).total_seconds())
        hi = int((wall - before - _NAIVE_EPOCH).total_seconds())
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if datetime.fromtimestamp(mid, self._tz).utcoffset() == after:
                hi = mid
            else:
                lo = mid
        return datetime.fromtimestamp(hi, UTC)
