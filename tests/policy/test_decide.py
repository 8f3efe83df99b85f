"""``decide``: every reason to refuse, all of them at once, and the obligations of an allow. No database."""

from __future__ import annotations

from dataclasses import replace

import pytest

from broker.policy import Policy
from broker.policy.decide import (
    REASON_TEXTS,
    BudgetState,
    QuerySpec,
    Reason,
    Requester,
    TimeWindow,
    decide,
)
from broker.policy.schema import Statistic

AIR = "air-quality-study"
MICRO = 1_000_000
PLENTY = BudgetState(3 * MICRO, 3 * MICRO)


def query(**changes: object) -> QuerySpec:
    base = QuerySpec(purpose=AIR, dataset="air-exposure", statistic=Statistic.mean, epsilon_micro=100_000,
                     measure="pm25", group_by=("district",), window=TimeWindow())
    return replace(base, **changes)  # type: ignore[arg-type]


def client(purposes: tuple[str, ...] = (AIR,), ceiling: int | None = 500_000) -> Requester:
    return Requester(service_id="environment-health", purposes=frozenset(purposes), epsilon_ceiling_micro=ceiling)


def reasons(request: QuerySpec, requester: Requester | None = None, state: BudgetState = PLENTY,
            policy: Policy | None = None, *, shipped: Policy) -> list[Reason]:
    decision = decide(request, requester or client(), policy or shipped, state)
    assert decision.allowed is (not decision.denials)
    return decision.reasons


def test_an_allowed_query_carries_its_obligations(policy: Policy) -> None:
    decision = decide(query(), client(), policy, PLENTY)
    assert decision.allowed and decision.obligations is not None
    assert decision.obligations.epsilon_micro == 100_000
    assert decision.obligations.clamp == (0, 15_000)  # pm25: 0-150 µg/m³ × 10^2
    assert decision.obligations.suppression_threshold == policy.broker.suppression_threshold
    assert decision.obligations.from_cache is False


def test_a_count_has_no_clamp(policy: Policy) -> None:
    decision = decide(query(statistic=Statistic.count, measure=None), client(), policy, PLENTY)
    assert decision.allowed and decision.obligations and decision.obligations.clamp is None


@pytest.mark.parametrize(("change", "expected"), [
    ({"purpose": "energy-renovation", "dataset": "household-energy", "measure": "energy_wh"},
     Reason.purpose_not_held),
    ({"purpose": "no-such-purpose"}, Reason.purpose_not_held),
    ({"purpose_version": 99}, Reason.purpose_version_retired),
    ({"legal_basis": "eu-gdpr:A6-1-e"}, Reason.legal_basis_lacking),
    ({"dataset": "trips", "measure": "distance_km"}, Reason.dataset_not_in_purpose),
    ({"measure": "district"}, Reason.field_not_in_purpose),
    ({"measure": "respiratory_symptoms"}, Reason.field_not_in_purpose),
    ({"statistic": Statistic.sum}, Reason.statistic_not_allowed),
    ({"statistic": Statistic.histogram, "measure": "respiratory_symptoms", "group_by": ()},
     Reason.statistic_not_allowed),
    ({"group_by": ("respiratory_symptoms",)}, Reason.group_by_not_declared),
    ({"group_by": ("pm25",)}, Reason.group_by_not_declared),
    ({"epsilon_micro": 600_000}, Reason.epsilon_above_query_cap),
])
def test_each_reason_alone(policy: Policy, change: dict[str, object], expected: Reason) -> None:
    assert expected in reasons(query(**change), shipped=policy)


def test_a_suspended_purpose_is_not_active(policy: Policy) -> None:
    suspended = policy.model_copy(update={"purposes": [
        p.model_copy(update={"status": "suspended"}) if p.id == AIR else p for p in policy.purposes]})
    assert reasons(query(), policy=suspended, shipped=policy) == [Reason.purpose_not_active]


def test_the_tokens_ceiling_binds(policy: Policy) -> None:
    assert reasons(query(epsilon_micro=200_000), client(ceiling=100_000), shipped=policy) == \
        [Reason.epsilon_above_token_ceiling]
    # A token whose authorization details do not cover the dataset allows nothing on it.
    assert reasons(query(), client(ceiling=None), shipped=policy) == [Reason.epsilon_above_token_ceiling]


def test_the_budget_binds_on_either_account(policy: Policy) -> None:
    assert reasons(query(), state=BudgetState(99_999, MICRO), shipped=policy) == [Reason.budget_exhausted]
    assert reasons(query(), state=BudgetState(MICRO, 99_999), shipped=policy) == [Reason.budget_exhausted]
    assert reasons(query(), state=BudgetState(100_000, 100_000), shipped=policy) == []


def test_a_stored_release_answers_at_no_cost_even_when_the_budget_is_spent(policy: Policy) -> None:
    decision = decide(query(), client(), policy, BudgetState(0, 0, cached=True))
    assert decision.allowed and decision.obligations is not None
    assert decision.obligations.epsilon_micro == 0 and decision.obligations.from_cache
    # ... but never beyond what the token or the purpose allows.
    assert decide(query(), client(ceiling=50_000), policy, BudgetState(0, 0, cached=True)).reasons == \
        [Reason.epsilon_above_token_ceiling]


def test_every_reason_is_reported_at_once_in_a_stable_order(policy: Policy) -> None:
    got = reasons(query(purpose_version=7, legal_basis="eu-gdpr:A6-1-e", statistic=Statistic.sum,
                        group_by=("respiratory_symptoms",), epsilon_micro=600_000),
                  client(ceiling=100_000), BudgetState(0, 0), shipped=policy)
    assert got == [Reason.purpose_version_retired, Reason.legal_basis_lacking, Reason.statistic_not_allowed,
                   Reason.group_by_not_declared, Reason.epsilon_above_query_cap, Reason.epsilon_above_token_ceiling,
                   Reason.budget_exhausted]


def test_a_purpose_not_held_stops_there(policy: Policy) -> None:
    assert reasons(query(), client(purposes=()), shipped=policy) == [Reason.purpose_not_held]


def test_a_dataset_outside_the_purpose_has_no_budget_to_exhaust(policy: Policy) -> None:
    assert reasons(query(dataset="trips", measure="distance_km"), state=BudgetState(0, 0), shipped=policy) == \
        [Reason.dataset_not_in_purpose]


def test_every_reason_has_both_texts_and_a_problem_entry(policy: Policy) -> None:
    assert set(REASON_TEXTS) == set(Reason)
    denial = decide(query(epsilon_micro=600_000), client(), policy, PLENTY).denials[0]
    entry = denial.as_problem_reason()
    assert entry["code"] == "epsilon-above-query-cap" and entry["fr"] and entry["en"] and entry["detail"]


def test_the_canonical_spec_ignores_checks_but_not_what_is_computed() -> None:
    assert query(purpose_version=1, legal_basis="eu-gdpr:A6-1-a").canonical() == query().canonical()
    assert query(epsilon_micro=100_001).canonical() != query().canonical()
