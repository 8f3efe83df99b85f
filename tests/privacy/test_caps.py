"""Personal caps: a citizen at their cap drops out; the loss is read from counters over consent intervals."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine

from broker.db import session_scope
from broker.policy import Policy
from broker.policy.decide import QuerySpec, TimeWindow
from broker.policy.schema import Statistic
from broker.privacy.caps import PersonalCaps
from broker.privacy.cohort import Cohorts
from broker.privacy.counters import Counters
from broker.privacy.models import Release
from broker.timeutil import FixedClock
from tests.privacy.city import AIR, AIR_DATA, City, requester, spec

EXTREME = 150.0


def fresh(city: City, clock: FixedClock, minutes: int, epsilon: float = 0.1, **kw: object) -> QuerySpec:
    """A query no earlier one equals (its window differs), so it is always a fresh release."""
    window = TimeWindow(clock.now() - timedelta(days=30, minutes=minutes), None)
    return spec(Statistic.mean, group_by=(), window=window, epsilon=epsilon, **kw)  # type: ignore[arg-type]


def test_a_citizen_at_their_cap_is_excluded_from_then_on(city: City, clock: FixedClock) -> None:
    others = city.consenting(2)
    for person in others:
        city.records(person, AIR_DATA, city.reading(10))
    careful = city.consenting(1, cap=0.25)[0]
    city.records(careful, AIR_DATA, city.reading(EXTREME))

    assert city.totals(fresh(city, clock, 0, 0.2)).counts == [3]  # 0 + 0.2 <= 0.25
    assert city.ask(fresh(city, clock, 1, 0.2)).answer is not None  # spends 0.2 of their 0.25
    query = fresh(city, clock, 2, 0.1)
    assert city.totals(query).counts == [2] and city.totals(query).sums == [2000]  # 0.2 + 0.1 > 0.25
    assert city.totals(fresh(city, clock, 3, 0.05)).counts == [3]  # 0.2 + 0.05 still fits
    outcome = city.ask(query)
    assert outcome.answer is not None
    with session_scope(city.engine) as session:
        stored = session.get(Release, outcome.answer.query_id)
        assert stored is not None and stored.cohort_size == 2
    assert city.totals(fresh(city, clock, 4, 0.05)).counts == [2]  # 0.3 + 0.05 > 0.25: out for the year


def test_releases_before_a_consent_or_after_a_withdrawal_do_not_count(city: City, clock: FixedClock) -> None:
    city.records(city.consenting(1)[0], AIR_DATA, city.reading(10))
    assert city.ask(fresh(city, clock, 0, 0.2)).answer is not None  # before the careful citizen consents
    clock.advance(minutes=1)
    careful = city.consenting(1, cap=0.25)[0]
    city.records(careful, AIR_DATA, city.reading(10))
    # G + ε = 0.4 > 0.25 (the global bound cannot help), but their own loss is 0: still in.
    assert city.totals(fresh(city, clock, 1, 0.2)).counts == [2]
    clock.advance(minutes=1)
    city.consent(careful, state="withdrawn")
    clock.advance(minutes=1)
    assert city.ask(fresh(city, clock, 2, 0.2)).answer is not None  # after they withdrew
    clock.advance(minutes=1)
    city.consent(careful)
    assert city.totals(fresh(city, clock, 3, 0.2)).counts == [2]


def test_releases_of_a_public_task_count_for_everyone(city: City, clock: FixedClock) -> None:
    city.records(city.consenting(1)[0], AIR_DATA, city.reading(10))
    careful = city.consenting(1, cap=0.25)[0]
    city.records(careful, AIR_DATA, city.reading(10))
    planning = spec(Statistic.count, purpose="traffic-planning", dataset="trips", epsilon=0.2)
    assert city.ask(planning, requester("mobility", ("traffic-planning",))).answer is not None
    assert city.totals(fresh(city, clock, 0, 0.1)).counts == [1]


def test_the_global_bound_skips_the_per_citizen_computation(city: City, engine: Engine, policy: Policy,
                                                            clock: FixedClock) -> None:
    city.consenting(1, cap=0.5)
    purpose = policy.purpose(AIR)
    assert purpose is not None
    with session_scope(engine) as session:
        base, pseudonym = Cohorts(session, policy, city.secrets).before_caps(purpose, clock.now())
        caps = PersonalCaps(session, policy)
        assert caps.smallest_cap_micro() == 500_000
        assert caps.over_cap(base, pseudonym, clock.now(), 500_000) is None  # nothing spent, 0.5 fits
        assert caps.over_cap(base, pseudonym, clock.now(), 500_001) is not None


def test_counters_advance_once_per_release_in_order(city: City, engine: Engine, clock: FixedClock) -> None:
    city.records(city.consenting(1)[0], AIR_DATA, city.reading(10))
    for minutes, epsilon in ((0, 0.1), (1, 0.25), (2, 0.05)):
        assert city.ask(fresh(city, clock, minutes, epsilon)).answer is not None
    city.ask(fresh(city, clock, 2, 0.05))  # a repeat: answered from the store, the counter does not move
    with session_scope(engine) as session:
        counters = Counters(session)
        value = counters.value(AIR, AIR_DATA)
        assert value is not None and (value.epsilon_micro, value.releases) == (400_000, 3)
        # A worker whose clock lags cannot count a release before one already counted.
        late = counters.advance(AIR, AIR_DATA, 1, clock.now() - timedelta(hours=1))
        assert late.released_at == value.released_at and late.epsilon_micro == 400_001


def test_when_the_default_cap_binds_every_member_is_checked(engine: Engine, policy: Policy, clock: FixedClock,
                                                            city: City) -> None:
    strict = policy.model_copy(update={"broker": policy.broker.model_copy(update={"citizen_privacy_cap": 0.25})})
    town = City(engine, strict, city.secrets, clock)
    early = town.consenting(2)
    for person in early:
        town.records(person, AIR_DATA, town.reading(10))
    assert town.ask(fresh(town, clock, 0, 0.2)).answer is not None
    clock.advance(minutes=1)
    late = town.consenting(1)[0]
    town.records(late, AIR_DATA, town.reading(EXTREME))
    generous = town.consenting(1, cap=5.0)[0]
    town.records(generous, AIR_DATA, town.reading(EXTREME))
    # The two early members spent 0.2 of the default 0.25; the late one nothing; the generous one has room.
    totals = town.totals(fresh(town, clock, 1, 0.1))
    assert totals.counts == [2] and totals.sums == [2 * 15_000]
