"""Business calendars: how much of a span was "open for business".

A reply target measured on the business clock (`reply_clock: business`) must not count the
weekend, a bank holiday or the night against the team. `BusinessCalendar` turns the
`calendars:` settings (weekly hours in a timezone, holidays, extra closed and open dates) into
open spans on the UTC timeline, and answers "how many open seconds lie between these instants"
and "when will this many open seconds have passed".

Everything is computed in UTC: each local date's wall-clock intervals are converted to UTC
instants first, because Python subtracts two aware datetimes sharing a tzinfo as wall clock,
which is an hour off across a DST change.

A long span costs what its irregular days cost, not its length: whole days are counted in
closed form (so many Mondays times a regular Monday's open time), and only the days near a
holiday, a closed or extra open date or a DST change are walked one by one. A year of history
is a few hundred of them; a span of ten thousand years (an attack, which the plausible times
of the connectors refuse anyway) costs seconds and no memory, not minutes and gigabytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from itertools import islice
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from monitor.config import WEEKDAYS, CalendarSettings, HolidaySettings

# A calendar closed for this many local days in a row is treated as never opening again, so
# `add_business_seconds` on a calendar with no hours returns None instead of looping forever.
HORIZON_DAYS = 400
# Spans longer than this many local days are counted in closed form (`_whole_days`).
CLOSED_FORM_DAYS = 28
# Days whose UTC spans are remembered; beyond, the memory is started afresh (a long span walks
# its irregular days once, and must not keep them all).
CACHED_DAYS = 20_000
_DAY = timedelta(days=1)
_FIRST_DAY, _LAST_DAY = date.min, date.max

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
        self._regular: tuple[timedelta, ...] | None = None  # `_regular_days`, made once

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

    @property
    def zone(self) -> tzinfo:
        """The zone its hours are written in (what the open intervals read naturally in)."""
        return self._tz

    @classmethod
    def always_open(cls) -> BusinessCalendar:
        """24x7 without holidays: business seconds equal calendar seconds."""
        return cls(UTC, {day: [(0, 1440)] for day in range(7)})

    def business_seconds(self, start: datetime, end: datetime) -> float:
        """Open time within [start, end), in seconds; 0.0 when end <= start."""
        # Summing timedeltas keeps whole microseconds exact, so f(a, c) == f(a, b) + f(b, c).
        lo, hi = _utc(start, "start"), _utc(end, "end")
        if hi <= lo:
            return 0.0
        first = _day_before(lo.astimezone(self._tz).date())
        last = hi.astimezone(self._tz).date()
        if (last - first).days <= CLOSED_FORM_DAYS:
            total = sum((e - s for s, e in self.open_intervals(lo, hi)), timedelta())
            return total.total_seconds()
        # The spans of a day end within two days of its midnight, so every span of the days
        # `inner` .. `outer` lies inside [lo, hi): those days count whole, in closed form. The
        # days before and after are walked as `open_intervals` walks them.
        inner, outer = first + 4 * _DAY, last - 3 * _DAY
        head, reached = self._walk(first, inner - _DAY, lo, hi, lo)
        middle = self._whole_days(inner, outer)
        reached = max(reached, self._reached_after(outer))
        tail, _ = self._walk(outer + _DAY, last, lo, hi, reached)
        return (head + middle + tail).total_seconds()

    def _walk(
        self, first: date, last: date, lo: datetime, hi: datetime, reached: datetime
    ) -> tuple[timedelta, datetime]:
        """Open time of the days `first` .. `last` within [lo, hi), spans already counted up
        to `reached` left out (as `_spans` trims them); and how far the spans reached."""
        total = timedelta()
        day = first
        while day <= last:
            for s, e in self._day_spans(day):
                s = max(s, reached)
                if e > s:
                    if s < hi:
                        total += min(e, hi) - s
                    reached = e
            day += _DAY
        return total, reached

    def _reached_after(self, day: date) -> datetime:
        """The latest end of the spans of `day` and the day before it."""
        ends = [e for d in (day - _DAY, day) for _, e in self._day_spans(d)]
        return max(ends, default=datetime.min.replace(tzinfo=UTC))

    def _whole_days(self, first: date, last: date) -> timedelta:
        """The open time of the days `first` .. `last`, each counted without what the two days
        before it already opened (a shift past midnight): regular days by their weekday, the
        irregular ones (`_irregular_days`) one by one."""
        regular = self._regular_days()
        days = (last - first).days + 1
        weeks, rest = divmod(days, 7)
        total = sum(regular, timedelta()) * weeks
        total += sum((regular[(first.weekday() + i) % 7] for i in range(rest)), timedelta())
        for day in self._irregular_days(first, last):
            reached = self._reached_after(day - _DAY)
            own = timedelta()
            for s, e in self._day_spans(day):
                s = max(s, reached)
                if e > s:
                    own += e - s
                    reached = e
            total += own - regular[day.weekday()]
        return total

    def _regular_days(self) -> tuple[timedelta, ...]:
        """Per weekday, a regular day's own open time: its weekly hours without what the two
        days before it (by their weekly hours) already opened. On the wall clock, which is the
        UTC timeline for any day whose offset stays put around it."""
        if self._regular is None:
            own = []
            for weekday in range(7):
                before = [
                    end - 1440 * back
                    for back in (1, 2)
                    for _, end in self._weekly[(weekday - back) % 7]
                ]
                reached = max(before, default=-(10**9))
                minutes = 0
                for s, e in self._weekly[weekday]:
                    s = max(s, reached)
                    if e > s:
                        minutes += e - s
                        reached = e
                own.append(timedelta(minutes=minutes))
            self._regular = tuple(own)
        return self._regular

    def _irregular_days(self, first: date, last: date) -> list[date]:
        """The days of `first` .. `last` whose own open time may differ from their weekday's
        regular one: a day with other hours than its weekday's (a holiday, a closed or extra
        open date) and the two days after it, and the days around a change of UTC offset."""
        special: set[date] = set()
        for day in self._special_days(first - 2 * _DAY, last):
            special.update(day + n * _DAY for n in range(3))
        for day in self._offset_changes(first, last):
            special.update(day + n * _DAY for n in range(-3, 4))
        return sorted(day for day in special if first <= day <= last)

    def _special_days(self, first: date, last: date) -> Iterable[date]:
        """Days of `first` .. `last` whose hours are not their weekday's."""
        candidates = {d for d in self._closed if first <= d <= last}
        candidates.update(d for d in self._open if first <= d <= last)
        if self._holiday_source is not None:
            for year in range(first.year, last.year + 1):
                candidates.update(d for d in self._holiday_dates(year) if first <= d <= last)
        return [d for d in candidates if self._minutes(d) != self._weekly[d.weekday()]]

    def _offset_changes(self, first: date, last: date) -> list[date]:
        """Local dates near which the zone's UTC offset changes between `first` and `last`:
        the offset is sampled weekly (no zone changes it twice within a week), and the day of a
        change found by halving the week."""
        found: list[date] = []
        # A week before and after, within the years a zone can convert (1 to 9999, less a day).
        moment = datetime.combine(max(first, _FIRST_DAY + 8 * _DAY) - 7 * _DAY, time(12), UTC)
        end = datetime.combine(min(last, _LAST_DAY - 8 * _DAY) + 7 * _DAY, time(12), UTC)
        offset = moment.astimezone(self._tz).utcoffset()
        while moment < end:
            following = moment + 7 * _DAY
            changed = following.astimezone(self._tz).utcoffset()
            if changed != offset:
                before, after = moment, following
                while after - before > _DAY:
                    middle = before + (after - before) // 2
                    if middle.astimezone(self._tz).utcoffset() == offset:
                        before = middle
                    else:
                        after = middle
                found.extend((before.date(), after.date()))
                offset = changed
            moment = following
        return found

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
        """The open spans intersecting [start, end), clipped to it, merged where they touch:
        the time `business_seconds(start, end)` counts, which is their sum (what `report
        --items` shows as a response's business-hours arithmetic)."""
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
        day = _day_before(start.astimezone(self._tz).date())
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
            spans = tuple((s, e) for s, e in converted if e > s)
            if len(self._days) >= CACHED_DAYS:
                self._days.clear()
            self._days[day] = spans
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
            # object parses its key on every check. The year's dates are the ones it added (a
            # dict keeps their order), so the cost of a year does not grow with those before.
            source = self._holiday_source
            known, before = year in source.years, len(source)
            try:
                source.get(date(year, 1, 1))
            except Exception:  # noqa: BLE001 - a year the data cannot compute has no holidays
                return self._holiday_years.setdefault(year, frozenset())
            added = source if known else islice(reversed(source.keys()), len(source) - before)
            found = frozenset(day for day in added if day.year == year)
            if len(self._holiday_years) >= CACHED_DAYS:
                self._holiday_years.clear()
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


def _day_before(day: date) -> date:
    return day - _DAY if day > date.min else day
