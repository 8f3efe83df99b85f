"""Properties of the pushed-down totals, on both databases:

* they equal, before noise, the reference path (Python per-citizen reduction, then OpenDP's own
  transformations), for counts, means and quantile scores, ungrouped and grouped;
* adding or removing one citizen moves them by at most the declared sensitivity (and OpenDP's maps agree
  with the sensitivities the release functions declare).

Each example lives in its own hour of time and queries only that hour, so examples sharing one database do not
see each other's records. The path without a time window (the summaries the database keeps) is held to the
reference over every record of the accumulated city, and to the windowed path over a window covering them all.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.policy.decide import QuerySpec, TimeWindow
from broker.policy.schema import Statistic
from broker.privacy.aggregates import Totals, below_above
from broker.privacy.mechanisms import quantile_scoring
from broker.privacy.releases import value_sensitivity
from broker.timeutil import FixedClock
from tests.privacy.city import AIR_DATA, City, spec

DISTRICTS = [f"lyon-{i}" for i in range(1, 10)]
# A citizen whose latest record is in an undeclared district (paris-1) is left out of grouped totals.
record = st.tuples(st.integers(-1_000, 20_000),                       # pm25 × 100, beyond both bounds too
                   st.sampled_from([*DISTRICTS[:3], "lyon-9", "paris-1"]),
                   st.integers(0, 2), st.integers(0, 999_999))        # second (ties are likely), microsecond
person = st.tuples(st.booleans(), st.lists(record, max_size=4))       # (consents, records)
query_kind = st.sampled_from([(Statistic.count, ()), (Statistic.mean, ()), (Statistic.mean, ("district",)),
                              (Statistic.quantile, ()), (Statistic.quantile, ("district",))])
RUN = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])


def rows(start: datetime, records: list[tuple[int, str, int, int]]) -> list[dict[str, Any]]:
    return [{"pm25": value, "district": district, "day": start + timedelta(seconds=second, microseconds=micro)}
            for value, district, second, micro in records]


def populate(city: City, start: datetime, people: list[tuple[bool, list[Any]]]) -> list[Any]:
    out = []
    for consents, records in people:
        citizen = city.consenting(1)[0] if consents else city.citizen()
        if records:
            city.records(citizen, AIR_DATA, *rows(start, records))
        out.append(citizen)
    return out


def query_for(start: datetime, kind: tuple[Statistic, tuple[str, ...]], quantile: float) -> QuerySpec:
    statistic, group_by = kind
    return spec(statistic, group_by=group_by, window=TimeWindow(start, start + timedelta(hours=1)),
                quantile=quantile if statistic is Statistic.quantile else None)


def scores(city: City, query: QuerySpec, totals: Totals) -> list[list[int]]:
    plan = city.plan(query)
    scoring = quantile_scoring(plan.candidates, float(plan.quantile or 0.5))
    return [scoring.scores(*below_above(cell, len(plan.candidates))) for cell in totals.buckets]


@RUN
@given(people=st.lists(person, min_size=1, max_size=5), kind=query_kind, quantile=st.sampled_from([0.5, 0.9]))
def test_pushed_down_totals_equal_the_reference(city: City, clock: FixedClock, people: list[Any],
                                                kind: Any, quantile: float) -> None:
    start = next_hour(city, clock)
    populate(city, start, people)
    query = query_for(start, kind, quantile)
    pushed, reference = city.totals(query), city.reference(query)
    assert pushed.counts == reference.counts
    plan = city.plan(query)
    assert reference.count_sensitivity == 1
    if plan.measure is not None:
        assert pushed.sums == reference.sums
        assert reference.sum_sensitivity == value_sensitivity(plan)
    if plan.candidates:
        assert scores(city, query, pushed) == reference.scores
        assert reference.score_sensitivity == quantile_scoring(plan.candidates, quantile).sensitivity


@RUN
@given(people=st.lists(person, min_size=1, max_size=4), newcomer=st.lists(record, min_size=1, max_size=4),
       kind=query_kind, quantile=st.sampled_from([0.5, 0.9]), leaver=st.integers(0, 3))
def test_one_citizen_more_or_less_moves_totals_within_the_sensitivity(
        city: City, clock: FixedClock, people: list[Any], newcomer: list[Any], kind: Any, quantile: float,
        leaver: int) -> None:
    start = next_hour(city, clock)
    citizens = populate(city, start, people)
    query = query_for(start, kind, quantile)
    plan = city.plan(query)
    before = city.totals(query)
    populate(city, start, [(True, newcomer)])
    assert_neighbours(city, query, before, city.totals(query))
    leaving = citizens[leaver % len(citizens)]
    with_all = city.totals(query)
    if people[leaver % len(people)][0]:
        city.consent(leaving, state="withdrawn")
    assert_neighbours(city, query, with_all, city.totals(query))
    assert plan.keys == city.plan(query).keys


def assert_neighbours(city: City, query: QuerySpec, a: Totals, b: Totals) -> None:
    plan = city.plan(query)
    assert sum(abs(x - y) for x, y in zip(a.counts, b.counts, strict=True)) <= 1
    if plan.measure is not None and not plan.candidates:
        assert sum(abs(x - y) for x, y in zip(a.sums, b.sums, strict=True)) <= value_sensitivity(plan)
    if plan.candidates:
        sensitivity = quantile_scoring(plan.candidates, float(plan.quantile or 0.5)).sensitivity
        moved = [max(abs(x - y) for x, y in zip(sa, sb, strict=True))
                 for sa, sb in zip(scores(city, query, a), scores(city, query, b), strict=True)]
        assert max(moved) <= sensitivity
        assert sum(1 for m in moved if m) <= 1  # one citizen, one cell


def next_hour(city: City, clock: FixedClock) -> datetime:
    """A fresh hour for each example, in the last 30 days."""
    counter = city.__dict__.setdefault("_hours", itertools.count())
    return clock.now() - timedelta(days=30) + timedelta(hours=next(counter))


def test_a_citizen_counts_in_the_cell_of_their_latest_second(city: City, clock: FixedClock) -> None:
    start = next_hour(city, clock)
    query = query_for(start, (Statistic.count, ("district",)), 0.5)
    moved, tied = city.consenting(2)
    # Latest second wins, whatever the cell; within one second, the higher cell wins, whatever the microsecond.
    city.records(moved, AIR_DATA, *rows(start, [(100, "lyon-9", 0, 0), (100, "lyon-2", 1, 0)]))
    city.records(tied, AIR_DATA, *rows(start, [(100, "lyon-5", 2, 900_000), (100, "lyon-7", 2, 100_000)]))
    assert city.totals(query).counts == [0, 1, 0, 0, 0, 0, 1, 0, 0]
    assert city.reference(query).counts == [0, 1, 0, 0, 0, 0, 1, 0, 0]


def test_the_canonical_spec_differs_per_window() -> None:
    a = spec(Statistic.count, window=TimeWindow(datetime(2026, 1, 1), None))
    assert replace(a, window=TimeWindow(datetime(2026, 1, 2), None)).canonical() != a.canonical()


def test_a_histogram_counts_each_citizen_once_in_their_latest_category(city: City, clock: FixedClock) -> None:
    start = next_hour(city, clock)
    energy = "energy-renovation"
    people = city.consenting(3, purpose=energy)
    city.records(people[0], "household-energy", *[
        {"day": start + timedelta(seconds=s), "heating": h, "dwelling": "flat", "energy_wh": 5000}
        for s, h in ((0, "gas"), (5, "wood"))])                     # latest: wood
    city.records(people[1], "household-energy",  # one second for both: 'gas' > 'electric' as text
                 {"day": start, "heating": "gas", "dwelling": "house", "energy_wh": 9000},
                 {"day": start, "heating": "electric", "dwelling": "house", "energy_wh": 9000})
    city.records(people[2], "household-energy", {"day": start, "heating": "gas", "dwelling": "flat", "energy_wh": 1})
    query = spec(Statistic.histogram, purpose=energy, dataset="household-energy", measure="heating",
                 group_by=("dwelling",), window=TimeWindow(start, start + timedelta(hours=1)))
    plan = city.plan(query)
    expected = [0] * len(plan.cells)
    for cell in (("flat", "wood"), ("house", "gas"), ("flat", "gas")):
        expected[plan.cells.index(cell)] += 1
    assert city.totals(query).counts == expected
    assert city.reference(query).counts == expected


# -- without a time window: the summaries the database keeps ------------------------------------------------------

EVERYTHING = TimeWindow(None, None)
# pm25 may be missing and the district undeclared or missing: such citizens are left out, on every path alike.
sparse_record = st.tuples(st.none() | st.integers(-1_000, 20_000),
                          st.sampled_from([None, *DISTRICTS[:3], "lyon-9", "paris-1"]),
                          st.integers(0, 2), st.integers(0, 999_999))
sparse_person = st.tuples(st.booleans(), st.lists(sparse_record, max_size=4))
every_kind = st.sampled_from([(Statistic.count, ()), (Statistic.count, ("district",)), (Statistic.mean, ()),
                              (Statistic.mean, ("district",)), (Statistic.quantile, ()),
                              (Statistic.quantile, ("district",))])


def unwindowed(start: datetime, kind: tuple[Statistic, tuple[str, ...]], quantile: float) -> QuerySpec:
    return replace(query_for(start, kind, quantile), window=EVERYTHING)


@RUN
@given(people=st.lists(sparse_person, min_size=1, max_size=5), kind=every_kind, quantile=st.sampled_from([0.5, 0.9]))
def test_totals_without_a_window_equal_the_reference(city: City, clock: FixedClock, people: list[Any],
                                                     kind: Any, quantile: float) -> None:
    # The city accumulates across examples: both sides read every record of every member.
    populate(city, next_hour(city, clock), people)
    query = unwindowed(clock.now(), kind, quantile)
    pushed, reference = city.totals(query), city.reference(query)
    plan = city.plan(query)
    assert pushed.counts == reference.counts
    if plan.measure is not None:
        assert pushed.sums == reference.sums
    if plan.candidates:
        assert scores(city, query, pushed) == reference.scores


@RUN
@given(people=st.lists(sparse_person, min_size=1, max_size=5), kind=every_kind, quantile=st.sampled_from([0.5, 0.9]))
def test_a_window_over_every_record_gives_the_totals_of_no_window(city: City, clock: FixedClock,
                                                                  people: list[Any], kind: Any,
                                                                  quantile: float) -> None:
    populate(city, next_hour(city, clock), people)
    query = unwindowed(clock.now(), kind, quantile)
    covering = replace(query, window=TimeWindow(clock.now() - timedelta(days=3650), clock.now() + timedelta(days=1)))
    assert city.totals(covering) == city.totals(query)


def both_windows(start: datetime) -> list[TimeWindow]:
    return [EVERYTHING, TimeWindow(start, start + timedelta(hours=1))]


def test_a_citizen_whose_latest_record_is_in_an_undeclared_district_is_left_out(city: City,
                                                                                clock: FixedClock) -> None:
    start = next_hour(city, clock)
    left_out, kept = city.consenting(2)
    city.records(left_out, AIR_DATA, *rows(start, [(1000, "lyon-1", 0, 0), (1000, "paris-1", 1, 0)]))
    city.records(kept, AIR_DATA, *rows(start, [(3000, "paris-1", 0, 0), (2000, "lyon-2", 1, 0)]))
    for window in both_windows(start):
        count = spec(Statistic.count, group_by=("district",), window=window)
        mean = spec(Statistic.mean, group_by=("district",), window=window)
        for totals in (city.totals(count), city.reference(count)):
            assert totals.counts == [0, 1, 0, 0, 0, 0, 0, 0, 0]
        for totals in (city.totals(mean), city.reference(mean)):  # kept's earlier paris-1 value still counts
            assert (totals.counts, totals.sums) == ([0, 1, 0, 0, 0, 0, 0, 0, 0], [0, 2500, 0, 0, 0, 0, 0, 0, 0])
        ungrouped = spec(Statistic.count, window=window)  # no key, nothing undeclared: both count
        assert city.totals(ungrouped).counts == city.reference(ungrouped).counts == [2]


def test_a_citizen_whose_latest_pm25_is_null_counts_there_with_the_mean_of_their_other_values(
        city: City, clock: FixedClock) -> None:
    start = next_hour(city, clock)
    sparse, empty = city.consenting(2)
    city.records(sparse, AIR_DATA, *rows(start, [(1000, "lyon-1", 0, 0), (2001, "lyon-2", 1, 0),
                                                 (None, "lyon-3", 2, 0)]))
    city.records(empty, AIR_DATA, *rows(start, [(None, "lyon-4", 0, 0)]))  # no value at all: out of the mean
    for window in both_windows(start):
        mean = spec(Statistic.mean, group_by=("district",), window=window)
        for totals in (city.totals(mean), city.reference(mean)):  # (1000 + 2001) / 2, rounded half up
            assert (totals.counts, totals.sums) == ([0, 0, 1, 0, 0, 0, 0, 0, 0], [0, 0, 1501, 0, 0, 0, 0, 0, 0])
        count = spec(Statistic.count, group_by=("district",), window=window)
        assert city.totals(count).counts == city.reference(count).counts == [0, 0, 1, 1, 0, 0, 0, 0, 0]


def test_a_tie_within_one_second_is_broken_by_every_category_not_only_the_grouped_ones(
        city: City, clock: FixedClock) -> None:
    start = next_hour(city, clock)
    citizen = city.consenting(1)[0]
    # One second: the district (first declared category) decides before the symptoms grouped on.
    city.records(citizen, AIR_DATA,
                 {"day": start, "district": "lyon-2", "respiratory_symptoms": "none", "pm25": 100},
                 {"day": start + timedelta(microseconds=500_000), "district": "lyon-1",
                  "respiratory_symptoms": "severe", "pm25": 100})
    for window in both_windows(start):
        query = spec(Statistic.count, group_by=("respiratory_symptoms",), window=window)
        assert city.totals(query).counts == city.reference(query).counts == [1, 0, 0, 0]


def test_a_record_late_in_its_second_still_belongs_to_that_second(city: City, clock: FixedClock) -> None:
    start = next_hour(city, clock)
    citizen = city.consenting(1)[0]
    # lyon-9 at 0.9995 s is earlier than lyon-1 at 1 s, though lyon-9 would win a tie.
    city.records(citizen, AIR_DATA, *rows(start, [(100, "lyon-9", 0, 999_500), (100, "lyon-1", 1, 0)]))
    for window in both_windows(start):
        query = spec(Statistic.count, group_by=("district",), window=window)
        assert city.reference(query).counts == [1, 0, 0, 0, 0, 0, 0, 0, 0]
        assert city.totals(query).counts == [1, 0, 0, 0, 0, 0, 0, 0, 0]
