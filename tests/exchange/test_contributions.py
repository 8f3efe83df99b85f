"""The contribution ledger: earnings derived from consent intervals × release counters, exact decimals."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlmodel import Session

from broker.exchange.benefits import Benefits
from broker.exchange.contributions import month_cuts
from tests.exchange.world import AIR, ENERGY, ENERGY_DATA, PARKING, PARKING_DATA, World


def test_earnings_are_exact_over_give_withdraw_give_again(world: World) -> None:
    citizen, bystander = world.citizen(), world.citizen()
    world.releases(1)  # before any consent: earns nothing
    world.consent(citizen)
    world.releases(2)
    world.consent(citizen, state="withdrawn")
    world.releases(3)  # outside the interval
    world.consent(citizen)
    world.releases(4)

    ledger = world.ledger(citizen)
    assert ledger.releases == 6
    assert ledger.purposes == [AIR]
    assert ledger.totals_by_kind == {"money": Decimal("0.30")}  # 6 × €0.05, as a Decimal, not 0.30000000000000004
    assert isinstance(ledger.total, Decimal) and ledger.total == Decimal("0.30")
    assert world.ledger(bystander).releases == 0 and world.ledger(bystander).total == 0


def test_monthly_lines_split_at_month_boundaries(world: World) -> None:
    citizen = world.citizen()
    world.clock.at = datetime(2026, 3, 31, 23, 50, tzinfo=UTC)
    world.consent(citizen)
    world.releases(2)
    world.clock.advance(days=1)  # into April
    world.releases(3)
    lines = world.ledger(citizen).lines
    months = {line.month: line.releases for line in lines}
    assert sum(months.values()) == 5
    assert len(months) == 2 and list(months.values()) == [2, 3]
    assert [line.earned["money"] for line in lines] == [Decimal("0.10"), Decimal("0.15")]


def test_nothing_is_earned_after_erasure(world: World) -> None:
    citizen = world.citizen()
    world.consent(citizen)
    world.releases(2)
    world.erase(citizen)
    world.releases(3)
    assert world.ledger(citizen).releases == 2
    assert world.ledger(citizen).total == Decimal("0.10")


def test_nothing_is_earned_from_another_purposes_releases(world: World) -> None:
    citizen = world.citizen()
    world.consent(citizen, ENERGY)
    world.releases(2)  # air quality: not consented
    world.releases(1, ENERGY, ENERGY_DATA)
    ledger = world.ledger(citizen)
    assert (ledger.releases, ledger.purposes, ledger.totals_by_kind) == (1, [ENERGY], {"voucher": Decimal("0.10")})


def test_city_totals_equal_the_sum_of_the_ledgers(world: World) -> None:
    people = [world.citizen() for _ in range(4)]
    world.consent(people[0])
    world.consent(people[1], PARKING)
    world.releases(2)
    world.releases(3, PARKING, PARKING_DATA)
    world.consent(people[2])
    world.consent(people[0], state="withdrawn")
    world.releases(1)
    world.consent(people[3], ENERGY)
    world.releases(2, ENERGY, ENERGY_DATA)
    world.erase(people[1])
    world.releases(2, PARKING, PARKING_DATA)

    ledgers = [world.ledger(p) for p in people]
    expected: dict[str, Decimal] = {}
    for ledger in ledgers:
        for kind, amount in ledger.totals_by_kind.items():
            expected[kind] = expected.get(kind, Decimal(0)) + amount
    assert expected == {"money": Decimal("0.15"), "voucher": Decimal("0.23")}  # 3 × 0.05; 3 × 0.01 + 2 × 0.10
    with Session(world.engine) as session:
        city = Benefits(session, world.policy).report(world.clock.now())["city"]
    assert {k: Decimal(v) for k, v in city["returns_paid"].items()} == expected
    assert city["contributions"] == sum(ledger.releases for ledger in ledgers)


def test_month_cuts() -> None:
    start, end = datetime(2026, 1, 15, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)
    assert month_cuts(start, end) == [start, datetime(2026, 2, 1, tzinfo=UTC), end]
    assert month_cuts(start, datetime(2026, 1, 20, tzinfo=UTC)) == [start, datetime(2026, 1, 20, tzinfo=UTC)]


def test_nothing_is_earned_after_a_consent_expires(world: World) -> None:
    citizen = world.citizen()
    world.consent(citizen)
    world.releases(2)
    months = world.policy.purpose(AIR).consent_validity_months  # type: ignore[union-attr]
    world.clock.advance(days=31 * months + 1)  # past valid_until, before any expiry sweep ran
    world.releases(2)
    assert world.ledger(citizen).releases == 2


def test_a_consent_to_an_earlier_version_stops_earning_at_the_new_versions_first_release(world: World) -> None:
    citizen = world.citizen()
    world.consent(citizen)
    world.releases(2)
    bumped = world.policy.model_copy(update={"purposes": [
        p.model_copy(update={"version": p.version + 1}) if p.id == AIR else p for p in world.policy.purposes]})
    world.policy = bumped  # the city bumps the purpose: the citizen has not answered the new version
    world.releases(3)
    assert world.ledger(citizen).releases == 2
