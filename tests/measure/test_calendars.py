"""Business calendars: worked examples pinned to real dates, then properties over random spans.

The DST dates used: Europe/London springs forward on 2026-03-29 (01:00 GMT -> 02:00 BST) and
falls back on 2026-10-25 (02:00 BST -> 01:00 GMT); America/New_York on 2026-03-08 (02:00 EST
-> 03:00 EDT) and 2026-11-01 (02:00 EDT -> 01:00 EST). The `holidays` package gives England
2026-12-25 (Friday) and 2026-12-28 (Monday, Boxing Day observed).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.config import CalendarSettings
from monitor.measure.calendars import BusinessCalendar

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")
EVERY_DAY = (*WEEKDAYS, "sat", "sun")
HOUR = 3600.0


def calendar(
    timezone: str, intervals: list[str], days: tuple[str, ...] = WEEKDAYS, **extra: Any
) -> BusinessCalendar:
    hours = dict.fromkeys(days, intervals)
    return BusinessCalendar.from_settings(
        CalendarSettings.model_validate({"timezone": timezone, "hours": hours, **extra})
    )


ENGLAND = {"country": "GB", "subdivision": "ENG"}
SPLIT_DAY = calendar("Europe/London", ["09:00-12:00", "13:00-17:00"], holidays=ENGLAND)
OFFICE = calendar("Europe/London", ["09:00-17:00"], holidays=ENGLAND)
NIGHTS = calendar("Europe/London", ["22:00-06:00"], holidays=ENGLAND)
LONDON_EVERY_DAY = calendar("Europe/London", ["09:00-17:00"], EVERY_DAY)
LONDON_24H = calendar("Europe/London", ["00:00-24:00"], EVERY_DAY)
NEW_YORK_OFFICE = calendar("America/New_York", ["09:00-17:00"])
NEW_YORK_NIGHTS = calendar("America/New_York", ["22:00-06:00"], EVERY_DAY)
NEW_YORK_24H = calendar("America/New_York", ["00:00-24:00"], EVERY_DAY)
# Sunday intervals with ends inside the spring gap and the autumn fold.
NEW_YORK_ODD = calendar("America/New_York", ["01:30-02:00", "02:30-04:00"], ("sun",))
NEVER_OPEN = calendar("Europe/London", [])
EXCEPTIONS = calendar(
    "Europe/London",
    ["09:00-17:00"],
    holidays=ENGLAND,
    closed=["2026-06-10", "2026-06-20"],
    open={
        "2026-06-13": ["10:00-14:00"],
        "2026-06-20": ["10:00-14:00"],
        "2026-12-25": ["10:00-12:00"],
    },
)


def london(year: int, month: int, day: int, hour: int = 0, minute: int = 0, s: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, s, tzinfo=LONDON)


def new_york(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=NEW_YORK)


EXAMPLES = [
    # (calendar, start, end, expected hours)
    pytest.param(
        SPLIT_DAY, london(2026, 6, 8), london(2026, 6, 9), 7, id="two intervals a day count 7h"
    ),
    pytest.param(
        SPLIT_DAY,
        london(2026, 6, 8, 11),
        london(2026, 6, 8, 14),
        2,
        id="the lunch break is not counted",
    ),
    pytest.param(
        SPLIT_DAY,
        london(2026, 6, 12, 16),
        london(2026, 6, 15, 10),
        2,
        id="friday evening to monday morning counts only friday and monday hours",
    ),
    pytest.param(
        NIGHTS,
        london(2026, 6, 12, 20),
        london(2026, 6, 13, 12),
        8,
        id="a friday night shift runs into saturday morning",
    ),
    pytest.param(
        NIGHTS,
        london(2026, 6, 14, 20),
        london(2026, 6, 15, 8),
        0,
        id="no shift starts on sunday so monday early morning is closed",
    ),
    pytest.param(
        OFFICE,
        london(2026, 12, 24),
        london(2026, 12, 29),
        8,
        id="christmas day and boxing day observed close the office",
    ),
    pytest.param(
        NIGHTS,
        london(2026, 12, 24, 12),
        london(2026, 12, 26, 12),
        8,
        id="the shift before christmas runs into it but the christmas shift is closed",
    ),
    pytest.param(
        EXCEPTIONS,
        london(2026, 6, 9),
        london(2026, 6, 11),
        8,
        id="an extra closed date closes a wednesday",
    ),
    pytest.param(
        EXCEPTIONS,
        london(2026, 6, 12),
        london(2026, 6, 15),
        12,
        id="an extra open saturday adds its hours",
    ),
    pytest.param(
        EXCEPTIONS,
        london(2026, 12, 25),
        london(2026, 12, 26),
        2,
        id="extra opening on a holiday replaces the closure",
    ),
    pytest.param(
        EXCEPTIONS,
        london(2026, 6, 20),
        london(2026, 6, 21),
        0,
        id="a date both closed and open stays closed",
    ),
    pytest.param(
        LONDON_EVERY_DAY,
        london(2026, 3, 28),
        london(2026, 3, 31),
        24,
        id="london 9 to 5 keeps 8h a day across spring forward",
    ),
    pytest.param(
        LONDON_EVERY_DAY,
        london(2026, 10, 24),
        london(2026, 10, 27),
        24,
        id="london 9 to 5 keeps 8h a day across fall back",
    ),
    pytest.param(
        LONDON_24H,
        london(2026, 3, 29),
        london(2026, 3, 30),
        23,
        id="a 24h london day has 23h on spring forward sunday",
    ),
    pytest.param(
        LONDON_24H,
        london(2026, 10, 25),
        london(2026, 10, 26),
        25,
        id="a 24h london day has 25h on fall back sunday",
    ),
    pytest.param(
        NEW_YORK_OFFICE,
        new_york(2026, 3, 6, 16),
        new_york(2026, 3, 9, 10),
        2,
        id="new york friday to monday across spring forward",
    ),
    pytest.param(
        NEW_YORK_24H,
        new_york(2026, 11, 1),
        new_york(2026, 11, 2),
        25,
        id="a 24h new york day has 25h on fall back sunday",
    ),
    pytest.param(
        NEW_YORK_NIGHTS,
        new_york(2026, 3, 7, 12),
        new_york(2026, 3, 8, 12),
        7,
        id="a new york night shift loses an hour to spring forward",
    ),
    pytest.param(
        NEW_YORK_NIGHTS,
        new_york(2026, 10, 31, 12),
        new_york(2026, 11, 1, 12),
        9,
        id="a new york night shift gains an hour at fall back",
    ),
    pytest.param(
        NEW_YORK_ODD,
        new_york(2026, 3, 8),
        new_york(2026, 3, 9),
        1.5,
        id="an interval starting in the spring gap opens when the clocks jump",
    ),
    pytest.param(
        NEW_YORK_ODD,
        new_york(2026, 11, 1),
        new_york(2026, 11, 2),
        3,
        id="a time in the autumn fold means its first occurrence",
    ),
]


@pytest.mark.parametrize(("cal", "start", "end", "hours"), EXAMPLES)
def test_business_seconds_match_the_worked_examples(
    cal: BusinessCalendar, start: datetime, end: datetime, hours: float
) -> None:
    assert cal.business_seconds(start, end) == hours * HOUR


def test_spring_forward_sunday_opens_at_nine_summer_time() -> None:
    spans = list(LONDON_EVERY_DAY.open_intervals(london(2026, 3, 29), london(2026, 3, 30)))
    assert spans == [(datetime(2026, 3, 29, 8, tzinfo=UTC), datetime(2026, 3, 29, 16, tzinfo=UTC))]


def test_open_intervals_are_utc_clipped_and_merged_across_midnight() -> None:
    start, end = london(2026, 7, 1, 12), london(2026, 7, 4, 6)
    spans = list(LONDON_24H.open_intervals(start, end))
    assert spans == [(datetime(2026, 7, 1, 11, tzinfo=UTC), datetime(2026, 7, 4, 5, tzinfo=UTC))]
    assert all(s.tzinfo is UTC and e.tzinfo is UTC for s, e in spans)


def test_always_open_counts_calendar_seconds_across_a_dst_change() -> None:
    start, end = london(2026, 3, 28, 12), london(2026, 3, 30, 12)
    assert BusinessCalendar.always_open().business_seconds(start, end) == 47 * HOUR


def test_an_empty_or_reversed_span_has_no_business_seconds() -> None:
    at = london(2026, 6, 8, 10)
    assert SPLIT_DAY.business_seconds(at, at) == 0.0
    assert SPLIT_DAY.business_seconds(at, at - timedelta(hours=1)) == 0.0


def test_naive_datetimes_are_rejected() -> None:
    naive = datetime(2026, 6, 8, 10)  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="timezone-aware"):
        SPLIT_DAY.business_seconds(naive, london(2026, 6, 9))
    with pytest.raises(ValueError, match="timezone-aware"):
        SPLIT_DAY.is_open(naive)


def test_is_open_at_opening_time_but_not_at_closing_time() -> None:
    assert SPLIT_DAY.is_open(london(2026, 6, 8, 9))
    assert not SPLIT_DAY.is_open(london(2026, 6, 8, 12))
    assert not SPLIT_DAY.is_open(london(2026, 6, 13, 10))


def test_friday_sixteen_hundred_plus_two_business_hours_is_monday_ten() -> None:
    due = OFFICE.add_business_seconds(london(2026, 6, 12, 16), 2 * HOUR)
    assert due == london(2026, 6, 15, 10)
    assert due is not None and due.tzinfo is UTC


def test_adding_exactly_the_rest_of_the_day_ends_at_closing_time() -> None:
    assert OFFICE.add_business_seconds(london(2026, 6, 12, 16), HOUR) == london(2026, 6, 12, 17)


def test_adding_from_a_closed_time_starts_counting_at_the_next_opening() -> None:
    due = OFFICE.add_business_seconds(london(2026, 6, 13, 10), 1)
    assert due == london(2026, 6, 15, 9, 0, 1)


def test_adding_zero_seconds_returns_the_start_in_utc() -> None:
    assert OFFICE.add_business_seconds(london(2026, 6, 13, 10), 0) == datetime(
        2026, 6, 13, 9, tzinfo=UTC
    )


def test_a_calendar_with_no_hours_never_reaches_a_due_time() -> None:
    assert NEVER_OPEN.add_business_seconds(london(2026, 6, 12, 16), 1) is None


def test_an_unknown_holiday_country_is_an_error() -> None:
    with pytest.raises(ValueError, match="holiday"):
        calendar("Europe/London", ["09:00-17:00"], holidays={"country": "XX"})


# --- properties -------------------------------------------------------------------------------

SAMPLED = [SPLIT_DAY, NIGHTS, EXCEPTIONS, LONDON_24H, NEW_YORK_NIGHTS, NEW_YORK_ODD, NEVER_OPEN]
CALENDARS = st.sampled_from(SAMPLED)
INSTANTS = st.datetimes(
    min_value=datetime(2024, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive
    max_value=datetime(2028, 12, 31),  # noqa: DTZ001
    timezones=st.just(UTC),
)
SOME = settings(max_examples=200, deadline=None)


@SOME
@given(CALENDARS, INSTANTS, INSTANTS)
def test_business_seconds_are_never_negative_nor_more_than_calendar_seconds(
    cal: BusinessCalendar, a: datetime, b: datetime
) -> None:
    seconds = cal.business_seconds(a, b)
    assert 0.0 <= seconds <= max(0.0, (b - a).total_seconds())


@SOME
@given(CALENDARS, INSTANTS, INSTANTS, INSTANTS)
def test_business_seconds_add_up_over_consecutive_spans(
    cal: BusinessCalendar, x: datetime, y: datetime, z: datetime
) -> None:
    a, b, c = sorted((x, y, z))
    whole = cal.business_seconds(a, c)
    assert whole == pytest.approx(cal.business_seconds(a, b) + cal.business_seconds(b, c), abs=1e-6)


@SOME
@given(INSTANTS, INSTANTS)
def test_always_open_business_seconds_equal_calendar_seconds(a: datetime, b: datetime) -> None:
    expected = max(0.0, (b - a).total_seconds())
    assert BusinessCalendar.always_open().business_seconds(a, b) == expected


@SOME
@given(
    st.sampled_from([(OFFICE, LONDON), (NEW_YORK_OFFICE, NEW_YORK)]),
    st.dates(min_value=date(2024, 1, 1), max_value=date(2028, 12, 20)),
    st.floats(0, 1),
    st.floats(0, 1),
)
def test_a_monday_to_friday_calendar_is_closed_all_weekend(
    cal_tz: tuple[BusinessCalendar, ZoneInfo], day: date, p: float, q: float
) -> None:
    cal, tz = cal_tz
    saturday = day + timedelta(days=5 - day.weekday())
    monday = saturday + timedelta(days=2)
    # Local midnights, then UTC: the weekend is 47h or 49h long when the clocks change in it.
    start = datetime(saturday.year, saturday.month, saturday.day, tzinfo=tz).astimezone(UTC)
    end = datetime(monday.year, monday.month, monday.day, tzinfo=tz).astimezone(UTC)
    a, b = sorted((p, q))
    assert cal.business_seconds(start, end) == 0.0
    assert cal.business_seconds(start + (end - start) * a, start + (end - start) * b) == 0.0


@SOME
@given(CALENDARS, INSTANTS, st.floats(0, 500 * HOUR, allow_nan=False))
def test_add_business_seconds_is_the_inverse_of_business_seconds(
    cal: BusinessCalendar, start: datetime, seconds: float
) -> None:
    due = cal.add_business_seconds(start, seconds)
    if due is None:
        return
    assert due >= start
    assert cal.business_seconds(start, due) == pytest.approx(seconds, abs=1e-6)
    if seconds >= 1e-6:  # and it is the earliest such instant
        assert cal.business_seconds(start, due - timedelta(microseconds=1)) < seconds


# A shift past midnight overlapping the next day's early shift, and zones whose offsets change
# in other ways: half hours (Lord Howe), a month without summer time (Morocco, with holidays).
OVERLAPPING = calendar("America/New_York", ["20:00-04:00", "02:00-10:00"], EVERY_DAY)
LORD_HOWE = calendar("Australia/Lord_Howe", ["23:30-02:15"], EVERY_DAY)
CASABLANCA = calendar("Africa/Casablanca", ["21:00-05:00"], EVERY_DAY, holidays={"country": "MA"})
LONG_SPANS = st.tuples(
    st.sampled_from([*SAMPLED, OVERLAPPING, LORD_HOWE, CASABLANCA]),
    INSTANTS,
    st.integers(0, 3 * 365 * 86400),
)


@SOME
@given(LONG_SPANS)
def test_long_spans_counted_in_closed_form_equal_the_day_by_day_walk(
    case: tuple[BusinessCalendar, datetime, int],
) -> None:
    cal, start, seconds = case
    end = start + timedelta(seconds=seconds)
    walked = sum((e - s for s, e in cal.open_intervals(start, end)), timedelta())
    assert cal.business_seconds(start, end) == walked.total_seconds()


def test_business_seconds_of_ten_thousand_years_cost_seconds_not_minutes() -> None:
    """Year 1 to 9998 on a calendar with holidays and summer time: whole days in closed form,
    only the days around holidays and clock changes walked (the day-by-day walk took 46 s and
    574 MB)."""
    import time

    cal = calendar("Europe/London", ["09:00-17:00"], holidays=ENGLAND)
    start, end = datetime(1, 1, 2, tzinfo=UTC), datetime(9998, 1, 1, tzinfo=UTC)
    started = time.perf_counter()
    seconds = cal.business_seconds(start, end)
    assert time.perf_counter() - started < 20
    weekdays = (end - start).days * 5 / 7
    assert 0.95 * weekdays * 8 * HOUR < seconds < weekdays * 8 * HOUR
    assert len(cal._days) <= 20_000  # the memory a long span may keep
