"""The tallies of inquiries (monitor.store.tallies): counted by shape and bucketed per label set
at once, they are what counting each inquiry on its own gives, key for key and to the last bit
of every float sum."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from monitor.store.tallies import (
    CHATS_MISSED,
    INQUIRIES_TOTAL,
    OPEN_NOW,
    RESPONSE,
    RESPONSE_BREACHES,
    RESPONSE_BUCKETS,
    RESPONSE_BUSINESS,
    RESPONSES_CLAMPED,
    VERDICTS,
    Key,
    Layout,
    _observe,
    labels_text,
    tally_inquiries,
)

LAYOUT = Layout({RESPONSE: RESPONSE_BUCKETS, RESPONSE_BUSINESS: (60.0, 3600.0, 86400.0)})


def one_by_one(rows: list[tuple[Any, ...]], layout: Layout) -> Counter[Key]:
    """Each inquiry counted on its own, as a recount reads them: the rule the tallies follow."""
    out: Counter[Key] = Counter()
    for source, channel, status, kind, response, business, breached, clamped, verdict in rows:
        by_channel = labels_text(channel=channel)
        out[(INQUIRIES_TOTAL, source, by_channel, "")] += 1
        if verdict is not None:
            out[(VERDICTS, source, labels_text(channel=channel, verdict=verdict), "")] += 1
        if status == "answered":
            labels = labels_text(channel=channel, kind=kind)
            _observe(out, RESPONSE, source, labels, response, layout)
            if business is not None:
                _observe(out, RESPONSE_BUSINESS, source, labels, business, layout)
            if breached:
                out[(RESPONSE_BREACHES, source, by_channel, "")] += 1
            if clamped:
                out[(RESPONSES_CLAMPED, source, by_channel, "")] += 1
        elif status == "missed" and channel == "chat" and kind == "first":
            out[(CHATS_MISSED, source, "", "")] += 1
        elif status == "open":
            out[(OPEN_NOW, source, by_channel, "")] += 1
    return out


# Times on and around the bucket bounds, fractions whose float sums depend on their order,
# and the values no response should have but a tally must still place (NaN, infinity).
TIMES = st.one_of(
    st.sampled_from([0.0, 60.0, 59.999, 60.001, 3600.0, 604800.0, 604800.5, 0.1, 0.2, 0.3]),
    st.floats(min_value=0, max_value=2e6, allow_nan=False),
    st.integers(min_value=0, max_value=700_000),
    st.sampled_from([math.inf, math.nan]),
)
ROWS = st.lists(
    st.tuples(
        st.sampled_from(["mail", "chat-site"]),
        st.sampled_from(["email", "chat", "phone"]),
        st.sampled_from(["answered", "open", "missed"]),
        st.sampled_from(["first", "followup"]),
        TIMES,
        st.one_of(st.none(), TIMES),
        st.booleans(),
        st.booleans(),
        st.sampled_from([None, "within", "late"]),
    ),
    max_size=60,
)


def same(one: Counter[Key], other: Counter[Key]) -> bool:
    """Equal keys and values; a NaN sum equals a NaN sum."""
    if one.keys() != other.keys():
        return False
    return all(
        (math.isnan(a) and math.isnan(b)) if isinstance(a, float) and a != a else a == b
        for a, b in ((one[k], other[k]) for k in one)
    )


@given(ROWS)
def test_inquiries_tallied_together_count_what_each_counted_alone_does(
    rows: list[tuple[Any, ...]],
) -> None:
    together = tally_inquiries(rows, LAYOUT)
    assert same(together, one_by_one(rows, LAYOUT))
    assert same(tally_inquiries(iter(rows), LAYOUT), together)  # any iterable of rows


def test_a_float_sum_adds_the_times_in_the_order_of_the_rows() -> None:
    # 0.1 + 0.2 + 0.3 is not 0.3 + 0.2 + 0.1 in floats: the sum must be the rows' own.
    rows = [
        ("mail", "email", "answered", "first", t, None, False, False, None) for t in (0.1, 0.2, 0.3)
    ]
    key = (RESPONSE, "mail", labels_text(channel="email", kind="first"), "_sum")
    assert tally_inquiries(rows, LAYOUT)[key] == ((0 + 0.1) + 0.2) + 0.3
    assert tally_inquiries(rows, LAYOUT)[key] != 0.3 + 0.2 + 0.1
