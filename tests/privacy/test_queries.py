"""The query service end to end on both databases: exact ε accounting, the release cache, the audit trail."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import Engine
from sqlmodel import select

from broker.audit.models import AuditEntry
from broker.db import session_scope
from broker.policy.decide import QuerySpec, TimeWindow
from broker.policy.schema import Statistic
from broker.privacy.budget import SHARED
from broker.privacy.models import BudgetAccount, PrivacyCounter, Release
from broker.privacy.queries import BudgetExhausted, QueryDenied
from broker.timeutil import FixedClock
from tests.privacy.city import AIR, AIR_DATA, SERVICE, City, requester, spec


def window_query(clock: FixedClock, i: int, epsilon: float, statistic: Statistic = Statistic.mean) -> QuerySpec:
    return spec(statistic, group_by=("district",), epsilon=epsilon,
                window=TimeWindow(clock.now() - timedelta(days=60, minutes=i), None))


def accounts(engine: Engine) -> dict[str, int]:
    with session_scope(engine) as session:
        return {a.service_id: a.spent_micro for a in session.exec(select(BudgetAccount))}


def audit(engine: Engine) -> list[dict[str, object]]:
    with session_scope(engine) as session:
        return [json.loads(e.body) for e in session.exec(select(AuditEntry).where(AuditEntry.action == "query")
                                                         .order_by(AuditEntry.seq))]


def test_epsilon_accounting_is_exact_over_a_sequence(city: City, engine: Engine, clock: FixedClock) -> None:
    for person in city.consenting(6):
        city.records(person, AIR_DATA, city.reading(12))
    asked = [0.5, 0.25, 0.125, 0.333333, 0.5, 0.5, 0.5, 0.291667]  # 3.0 exactly: the service's cap
    remaining = 3_000_000
    for i, epsilon in enumerate(asked):
        outcome = city.ask(window_query(clock, i, epsilon, Statistic.count if i % 2 else Statistic.mean))
        assert outcome.answer is not None, outcome.refusal
        remaining -= round(epsilon * 1_000_000)
        assert outcome.answer.epsilon_charged_micro == round(epsilon * 1_000_000)
        assert outcome.answer.budget_remaining_micro == remaining
    assert remaining == 0
    assert accounts(engine) == {SHARED: 3_000_000, SERVICE: 3_000_000}

    refused = city.ask(window_query(clock, 99, 0.000001))
    assert isinstance(refused.refusal, BudgetExhausted)
    problem = refused.refusal.problem()
    assert problem["type"].endswith("/budget-exhausted") and problem["budget_remaining"] == 0.0
    assert [r["code"] for r in problem["reasons"]] == ["budget-exhausted"]

    # Another service shares the purpose's 4.0: it gets exactly the 1.0 left, then nothing.
    other = requester("statistics-office", (AIR,))
    assert city.ask(window_query(clock, 100, 0.5), other).answer is not None
    assert city.ask(window_query(clock, 101, 0.5), other).answer is not None
    assert isinstance(city.ask(window_query(clock, 102, 0.000001), other).refusal, BudgetExhausted)
    assert accounts(engine) == {SHARED: 4_000_000, SERVICE: 3_000_000, "statistics-office": 1_000_000}
    with session_scope(engine) as session:
        counter = session.get(PrivacyCounter, (AIR, AIR_DATA))
        releases = session.exec(select(Release)).all()
    assert counter is not None and counter.epsilon_micro == 4_000_000 and counter.releases == 10
    assert sum(r.epsilon_micro for r in releases) == 4_000_000


def test_an_identical_query_is_answered_from_the_store_at_no_cost(city: City, engine: Engine,
                                                                  clock: FixedClock) -> None:
    for person in city.consenting(3):
        city.records(person, AIR_DATA, city.reading(12))
    query = window_query(clock, 0, 0.5)
    first = city.ask(query).answer
    assert first is not None and not first.cached
    again = city.ask(query).answer
    assert again is not None and again.cached
    assert (again.query_id, again.results, again.epsilon_charged_micro) == (first.query_id, first.results, 0)
    assert accounts(engine)[SHARED] == 500_000
    # A request that only states checks the cache ignores (its purpose version) is the same query.
    pinned = QuerySpec(**{**query.__dict__, "purpose_version": 1})
    assert city.ask(pinned).answer.query_id == first.query_id  # type: ignore[union-attr]
    # Even with the budget gone, the stored answer is still given, and still free.
    for i in range(1, 6):
        assert city.ask(window_query(clock, i, 0.5)).answer is not None
    assert city.ask(query).answer.cached  # type: ignore[union-attr]
    # Another ε is another query.
    assert isinstance(city.ask(window_query(clock, 0, 0.4)).refusal, BudgetExhausted)
    entries = audit(engine)
    cached = [e for e in entries if e.get("details", {}).get("cached")]
    assert len(cached) == 3 and all(e["epsilon"] == 0.0 for e in cached)


def test_every_decision_is_audited_in_the_same_transaction(city: City, engine: Engine, clock: FixedClock) -> None:
    city.records(city.consenting(1)[0], AIR_DATA, city.reading(12))
    allowed = city.ask(window_query(clock, 0, 0.1)).answer
    refused = city.ask(spec(Statistic.sum, epsilon=0.1)).refusal
    assert allowed is not None and isinstance(refused, QueryDenied)
    entries = audit(engine)
    assert [e["decision"] for e in entries] == ["allow", "deny"]
    assert entries[0]["details"]["query_id"] == allowed.query_id and entries[0]["epsilon"] == 0.1
    assert entries[0]["result_hash"] and entries[0]["request_hash"]
    assert entries[1]["reasons"] == ["statistic-not-allowed"] and "epsilon" not in entries[1]
    assert refused.problem()["audit_index"] > allowed.audit_index
    with session_scope(engine) as session:
        stored = session.get(Release, allowed.query_id)
        assert stored is not None and stored.audit_index == allowed.audit_index
        assert json.loads(stored.results) == allowed.results and stored.cohort_size == 1
    assert accounts(engine) == {SHARED: 100_000, SERVICE: 100_000}  # the refusal spent nothing


def test_every_declared_group_is_released_and_small_ones_are_suppressed(city: City, clock: FixedClock) -> None:
    for person in city.consenting(2):
        city.records(person, AIR_DATA, city.reading(12, district="lyon-1"))
    answer = city.ask(window_query(clock, 0, 0.5, Statistic.count)).answer
    assert answer is not None
    assert [r["group"]["district"] for r in answer.results] == [f"lyon-{i}" for i in range(1, 10)]
    for cell in answer.results:
        assert cell["suppressed"] == (cell["value"] is None)
        if cell["suppressed"]:
            assert cell["ci95"] is None


def test_every_statistic_runs_on_both_databases(city: City, clock: FixedClock) -> None:
    for person in city.consenting(4):
        city.records(person, AIR_DATA, city.reading(12), city.reading(30))
    for statistic in (Statistic.count, Statistic.mean, Statistic.quantile):
        answer = city.ask(window_query(clock, 0, 0.2, statistic)).answer
        assert answer is not None and len(answer.results) == 9
    for person in city.consenting(3, purpose="energy-renovation"):
        city.records(person, "household-energy", {"energy_wh": 9000, "heating": "gas", "dwelling": "flat"})
    energy = requester("energy-transition", ("energy-renovation",))
    histogram = spec(Statistic.histogram, purpose="energy-renovation", dataset="household-energy",
                     measure="heating", group_by=("dwelling",), epsilon=0.2)
    answer = city.ask(histogram, energy).answer
    assert answer is not None and len(answer.results) == 2 * 6
    assert answer.results[0]["group"] == {"dwelling": "flat", "heating": "gas"}
    planning = spec(Statistic.sum, purpose="traffic-planning", dataset="trips", measure="distance_km",
                    group_by=("mode",), epsilon=0.2)
    assert city.ask(planning, requester("mobility", ("traffic-planning",))).answer is not None
