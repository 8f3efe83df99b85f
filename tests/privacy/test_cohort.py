"""Who contributes: only consents that count now. Everyone else gets an extreme value, and the exact
pre-noise totals must not move."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, inspect

from broker.consent.models import ConsentRecord
from broker.consent.notices import ensure_notice
from broker.db import session_scope
from broker.identity.models import Citizen
from broker.keys import Secrets
from broker.policy import Policy
from broker.policy.decide import QuerySpec, TimeWindow
from broker.policy.schema import Statistic
from broker.timeutil import FixedClock
from broker.vault.summaries import ConsentColumns
from broker.vault.tables import summary_ddl, sync_tables
from tests.consent.conftest import born_years_ago, bumped, link
from tests.policy.policy_files import with_ids_renamed
from tests.privacy.city import AIR, AIR_DATA, City, spec

TYPICAL, EXTREME = 20.0, 150.0


def mean_query() -> QuerySpec:
    return spec(Statistic.mean, group_by=())


def good_citizens(city: City, n: int = 3) -> list[Citizen]:
    people = city.consenting(n)
    for person in people:
        city.records(person, AIR_DATA, city.reading(TYPICAL))
    return people


def assert_only_good(city: City, n: int = 3) -> None:
    """On both paths: the summaries the database keeps (no window) and the records (a window)."""
    now = city.clock.now()
    for window in (TimeWindow(None, None), TimeWindow(now - timedelta(days=3650), now + timedelta(days=1))):
        totals = city.totals(spec(Statistic.mean, group_by=(), window=window))
        assert totals.counts == [n]
        assert totals.sums == [n * round(TYPICAL * 100)]


def raw_given(engine: Engine, policy: Policy, clock: FixedClock, citizen: Citizen, purpose_id: str, *,
              consent_type: str = "expressed", guardian: str | None = None) -> None:
    """A ``given`` record the ledger would have refused, as a bulk import could still write it."""
    purpose = policy.purpose(purpose_id)
    assert purpose is not None
    now = clock.now()
    with session_scope(engine) as session:
        notice = ensure_notice(session, policy, purpose, now)
        session.add(ConsentRecord(
            id=str(uuid.uuid4()), schema_version="27560-1", pseudonym=citizen.pseudonym, purpose_id=purpose.id,
            purpose_version=purpose.version, state="given", created_at=now, valid_from=now,
            valid_until=now + timedelta(days=300), method="api", expressed_by="self", guardian_pseudonym=guardian,
            consent_type=consent_type, notice_id=notice.id, language="fr", jurisdiction="FR", previous_id=None,
            evidence="0" * 64))


def test_withdrawn_expired_restricted_and_unasked_citizens_never_contribute(city: City, clock: FixedClock) -> None:
    good_citizens(city)
    withdrawn = city.consenting(1)[0]
    city.consent(withdrawn, state="withdrawn")
    paused = city.consenting(1)[0]
    city.consent(paused, state="paused")
    refused = city.citizen()
    city.consent(refused, state="refused")
    never_asked = city.citizen()
    restricted = city.consenting(1)[0]
    city.restrict(restricted)
    other_purpose = city.citizen()  # consented to another study of the same records only
    city.consent(other_purpose, purpose="public-health-study", explicit=True)
    clock.advance(days=-400)  # a consent given 400 days ago has run out (validity 12 months)
    expired = city.consenting(1)[0]
    clock.advance(days=400)
    for person in (withdrawn, paused, refused, never_asked, restricted, expired, other_purpose):
        city.records(person, AIR_DATA, city.reading(EXTREME), city.reading(EXTREME))
    assert_only_good(city)


def test_a_consent_to_an_earlier_version_no_longer_counts(city: City, engine: Engine, policy: Policy,
                                                          clock: FixedClock) -> None:
    old = city.consenting(1)[0]
    city.records(old, AIR_DATA, city.reading(EXTREME))
    purpose = policy.purpose(AIR)
    assert purpose is not None
    moved_on = City(engine, bumped(policy, purpose), city.secrets, clock)
    good_citizens(moved_on)
    assert_only_good(moved_on)
    assert city.totals(mean_query()).counts == [1]  # under the old policy only the old consent counted


def test_a_minor_counts_only_through_a_guardian(city: City, engine: Engine, policy: Policy,
                                                clock: FixedClock) -> None:
    good_citizens(city)
    alone = city.citizen(born=born_years_ago(clock, 14))
    raw_given(engine, policy, clock, alone, AIR)  # refused by the ledger; here as an import might write it
    city.records(alone, AIR_DATA, city.reading(EXTREME))
    assert_only_good(city)

    guardian = city.citizen()
    with_guardian = city.citizen(born=born_years_ago(clock, 14))
    with session_scope(engine) as session:  # the city records who holds parental responsibility
        link(session, guardian, with_guardian, clock)
    city.consent(with_guardian, guardian=guardian)
    city.records(with_guardian, AIR_DATA, city.reading(TYPICAL))
    assert_only_good(city, 4)


def test_special_categories_count_only_explicit_consents(city: City, engine: Engine, policy: Policy,
                                                          clock: FixedClock) -> None:
    health = "public-health-study"
    explicit = city.consenting(2, purpose=health)
    for person in explicit:
        city.records(person, AIR_DATA, city.reading(TYPICAL))
    implicit = city.citizen()
    raw_given(engine, policy, clock, implicit, health, consent_type="expressed")
    city.records(implicit, AIR_DATA, city.reading(EXTREME))
    totals = city.totals(spec(Statistic.mean, purpose=health, group_by=()))
    assert totals.counts == [2] and totals.sums == [2 * round(TYPICAL * 100)]


def test_a_purpose_not_based_on_consent_counts_every_citizen_not_restricted(city: City) -> None:
    people = [city.citizen() for _ in range(3)]
    restricted = city.citizen()
    city.restrict(restricted)
    for person in people:
        city.records(person, "trips", {"distance_km": 500, "mode": "bike"})
    city.records(restricted, "trips", {"distance_km": 6000, "mode": "car"})
    totals = city.totals(spec(Statistic.mean, purpose="traffic-planning", dataset="trips", measure="distance_km"))
    assert totals.counts == [3] and totals.sums == [1500]


def test_records_outside_the_window_are_ignored_and_an_undeclared_latest_district_leaves_out(
        city: City, clock: FixedClock) -> None:
    person, moved = city.consenting(2)
    now = clock.now()
    city.records(person, AIR_DATA, city.reading(10, at=now - timedelta(days=10)),
                 city.reading(EXTREME, at=now - timedelta(days=40)))
    # Their latest record names a district the policy does not declare (e.g. one it has since removed).
    city.records(moved, AIR_DATA, city.reading(20, at=now - timedelta(days=12)),
                 city.reading(EXTREME, at=now - timedelta(days=5), district="paris-1"))
    window = TimeWindow(now - timedelta(days=30), now)
    totals = city.totals(spec(Statistic.mean, group_by=("district",), window=window))
    assert sum(totals.counts) == 1 and sum(totals.sums) == 1000


def test_ids_of_the_longest_length_name_distinct_tables_and_columns_that_work(
        engine: Engine, secrets: Secrets, clock: FixedClock, tmp_path: Path) -> None:
    """Ids of 63 characters (the policy's limit) give names PostgreSQL would cut: the summary, its triggers and
    its consent columns must still be found under the names the code computes, and the cohort still count."""
    long_purpose, long_data = "a" + "-q" * 31, "b" + "_x" * 31
    policy = with_ids_renamed(tmp_path, {AIR_DATA: long_data, AIR: long_purpose})
    sync_tables(engine, policy)
    [ddl] = [d for d in summary_ddl(policy, engine.dialect.name) if d.dataset.id == long_data]
    names = [ddl.name, *ConsentColumns.of(long_purpose).columns(), *(ddl.trigger(e) for e in ("added", "consent"))]
    assert all(len(getattr(n, "name", n)) <= 63 for n in names)
    inspector = inspect(engine)
    assert {c["name"] for c in inspector.get_columns(ddl.name)} >= {c.name for c in ddl.summary.columns}

    city = City(engine, policy, secrets, clock)
    for person in city.consenting(3, purpose=long_purpose):
        city.records(person, long_data, city.reading(TYPICAL))
    city.records(city.citizen(), long_data, city.reading(EXTREME))  # no consent: never counts
    now = clock.now()
    for window in (TimeWindow(None, None), TimeWindow(now - timedelta(days=3650), now + timedelta(days=1))):
        totals = city.totals(spec(Statistic.mean, purpose=long_purpose, dataset=long_data, group_by=(),
                                  window=window))
        assert (totals.counts, totals.sums) == ([3], [3 * round(TYPICAL * 100)])
