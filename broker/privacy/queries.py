"""One statistics request, end to end, in the caller's transaction (DESIGN §2).

``decide`` → (stored release? answer it at no cost) → charge both budget accounts → cohort → pushed-down
totals → OpenDP noise → counters advance → audit entry → stored release. A refusal stops after ``decide`` (or
after a refused charge) and is audited with its reasons; it comes back as :attr:`QueryOutcome.refusal` rather
than raised, so that the caller commits the audit entry of the refusal and nothing else.

The release cache: an identical query (same canonical spec, ε included, same purpose version, same budget
period) is answered from the stored release, whoever asks, so repeating a query to average its noise away
gains nothing. Two identical queries racing on PostgreSQL serialise on the shared account's row lock; the
second then finds the first's release, gives its charge back within its own transaction (nothing was drawn)
and answers from it. The unique ``cache_key`` is the last line of defence.

Everything happens in one transaction, so on PostgreSQL the shared account's row stays locked while the
aggregate runs: fresh releases of one (purpose, dataset) are serialised, which is what makes the budget exact;
other purposes and datasets proceed in parallel. (SQLite serialises every writer anyway.)
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from broker.audit import AuditEvent, record
from broker.errors import BrokerError
from broker.keys import Secrets, canonical_json
from broker.policy.decide import BudgetState, Decision, Denial, Obligations, QuerySpec, Reason, Requester, decide
from broker.policy.schema import Policy, Purpose
from broker.privacy.aggregates import Aggregates
from broker.privacy.budget import Accounts, BudgetLedger, period_key
from broker.privacy.cohort import Cohorts
from broker.privacy.counters import Counters
from broker.privacy.epsilon import from_micro
from broker.privacy.models import Release
from broker.privacy.plan import build_plan
from broker.privacy.releases import release
from broker.timeutil import Clock, as_utc

ACTION = "query"


class QueryDenied(BrokerError):
    code, status, title = "query-denied", 403, "Query denied"


class BudgetExhausted(BrokerError):
    code, status, title = "budget-exhausted", 403, "Privacy budget exhausted"


@dataclass(frozen=True)
class Answer:
    query_id: str
    results: list[dict[str, Any]]
    epsilon_charged_micro: int
    budget_remaining_micro: int
    audit_index: int
    cached: bool


@dataclass(frozen=True)
class QueryOutcome:
    answer: Answer | None = None
    refusal: BrokerError | None = None


class _ServedMeanwhile(Exception):
    def __init__(self, stored: Release) -> None:
        self.stored = stored


def sha256_json(value: Any) -> str:
    return hashlib.sha256(canonical_json(value)).hexdigest()


class QueryService:
    def __init__(self, session: Session, policy: Policy, secrets: Secrets, clock: Clock) -> None:
        self.session = session
        self.policy = policy
        self.secrets = secrets
        self.clock = clock

    def answer(self, spec: QuerySpec, requester: Requester) -> QueryOutcome:
        now = as_utc(self.clock.now())
        purpose = self.policy.purpose(spec.purpose)
        ledger = BudgetLedger(self.session, self.policy)
        stored: Release | None = None
        cache_key = ""
        if purpose is not None and purpose.use_of(spec.dataset) is not None:
            cache_key = self.cache_key(spec, purpose, now)
            stored = self._stored(cache_key)
            accounts = ledger.accounts(requester.service_id, purpose, spec.dataset, now)
            state = BudgetState(accounts.shared.remaining_micro, accounts.service.remaining_micro,
                                cached=stored is not None)
        else:
            state = BudgetState(0, 0)  # no account: decide() refuses for the purpose or the dataset
        decision = decide(spec, requester, self.policy, state)
        if not decision.allowed or decision.obligations is None or purpose is None:
            return self._refuse(spec, requester, decision, now, state.remaining_micro)
        if stored is not None:
            return self._from_store(spec, requester, stored, state.remaining_micro, now)

        try:
            with self.session.begin_nested():
                charged = ledger.charge(requester.service_id, purpose, spec.dataset, spec.epsilon_micro, now)
                if charged is not None:
                    meanwhile = self._stored(cache_key)
                    if meanwhile is not None:
                        raise _ServedMeanwhile(meanwhile)
        except _ServedMeanwhile as served:
            return self._from_store(spec, requester, served.stored, state.remaining_micro, now)
        if charged is None:
            # Another request spent the budget between our read and our charge: the UPDATE had the last word.
            remaining = ledger.accounts(requester.service_id, purpose, spec.dataset, now).remaining_micro
            detail = (f"ε {from_micro(spec.epsilon_micro)} asked, {from_micro(remaining)} left this period")
            refused = Decision(allowed=False, denials=(Denial(Reason.budget_exhausted, detail),))
            return self._refuse(spec, requester, refused, now, remaining)
        return QueryOutcome(answer=self._fresh(spec, requester, purpose, decision.obligations, charged, cache_key,
                                               now))

    def cache_key(self, spec: QuerySpec, purpose: Purpose, at: datetime) -> str:
        return sha256_json({"spec": spec.canonical(), "purpose_version": purpose.version,
                            "period": period_key(purpose.budget.period, at)})

    # -- the three endings --------------------------------------------------------------------------------
    def _fresh(self, spec: QuerySpec, requester: Requester, purpose: Purpose, obligations: Obligations,
               accounts: Accounts, cache_key: str, now: datetime) -> Answer:
        plan = build_plan(spec, self.policy, obligations.clamp)
        cohort = Cohorts(self.session, self.policy, self.secrets).cohort(purpose, now, spec.epsilon_micro)
        totals = Aggregates.for_policy(self.session, self.policy).totals(plan, cohort)
        results = [cell.as_json() for cell in release(plan, totals, spec.epsilon_micro,
                                                        obligations.suppression_threshold)]
        counter = Counters(self.session).advance(purpose.id, spec.dataset, spec.epsilon_micro, now)
        query_id = str(uuid.uuid4())
        audit_index = self._audit(spec, requester, "allow", [], spec.epsilon_micro, now, query_id=query_id,
                                  results=results, cached=False,
                                  budget=self._budget_details(purpose, spec, now, spec.epsilon_micro, accounts))
        self.session.add(Release(
            id=query_id, cache_key=cache_key, service_id=requester.service_id, purpose_id=purpose.id,
            purpose_version=purpose.version, dataset_id=spec.dataset, period=period_key(purpose.budget.period, now),
            spec=canonical_json(spec.canonical()).decode(), epsilon_micro=spec.epsilon_micro,
            results=canonical_json(results).decode(), cohort_size=totals.citizens, audit_index=audit_index,
            released_at=counter.released_at, counter_epsilon_micro=counter.epsilon_micro,
            counter_releases=counter.releases))
        self.session.flush()
        return Answer(query_id=query_id, results=results, epsilon_charged_micro=spec.epsilon_micro,
                      budget_remaining_micro=accounts.remaining_micro, audit_index=audit_index, cached=False)

    def _from_store(self, spec: QuerySpec, requester: Requester, stored: Release, remaining: int,
                    now: datetime) -> QueryOutcome:
        results = json.loads(stored.results)
        purpose = self.policy.purpose(spec.purpose)
        budget = self._budget_details(purpose, spec, now, 0, None) if purpose is not None else {}
        audit_index = self._audit(spec, requester, "allow", [], 0, now, query_id=stored.id, results=results,
                                  cached=True, budget=budget)
        return QueryOutcome(answer=Answer(query_id=stored.id, results=results, epsilon_charged_micro=0,
                                          budget_remaining_micro=remaining, audit_index=audit_index, cached=True))

    def _refuse(self, spec: QuerySpec, requester: Requester, decision: Decision, now: datetime,
                remaining: int) -> QueryOutcome:
        reasons = [d.as_problem_reason() for d in decision.denials]
        audit_index = self._audit(spec, requester, "deny", [d.reason.value for d in decision.denials], None, now)
        detail = "; ".join(d.detail for d in decision.denials)
        if decision.reasons == [Reason.budget_exhausted]:
            return QueryOutcome(refusal=BudgetExhausted(detail, reasons=reasons, audit_index=audit_index,
                                                        budget_remaining=from_micro(max(remaining, 0))))
        return QueryOutcome(refusal=QueryDenied(detail, reasons=reasons, audit_index=audit_index))

    # -- internals ----------------------------------------------------------------------------------------
    @staticmethod
    def _budget_details(purpose: Purpose, spec: QuerySpec, now: datetime, charged_micro: int,
                        accounts: Accounts | None) -> dict[str, Any]:
        """What an allowed query's audit entry carries so that ``audit verify`` can replay every budget
        account offline: the period, the caps in force, the ε charged and, after a charge, what is spent."""
        budget = purpose.budget
        details: dict[str, Any] = {
            "period": period_key(budget.period, now),
            "caps": {"per_query": budget.per_query_epsilon, "per_service": budget.per_service_epsilon,
                     "total": budget.total_epsilon},
            "epsilon_charged": from_micro(charged_micro),
            "statistic": spec.statistic,
            "purpose_version": purpose.version,
        }
        if accounts is not None:
            details["spent"] = {"service": from_micro(accounts.service.spent_micro),
                                "total": from_micro(accounts.shared.spent_micro)}
        return details

    def _stored(self, cache_key: str) -> Release | None:
        return self.session.exec(select(Release).where(Release.cache_key == cache_key)).first()

    def _audit(self, spec: QuerySpec, requester: Requester, decision: str, reasons: list[str],
               epsilon_micro: int | None, now: datetime, *, query_id: str | None = None,
               results: list[dict[str, Any]] | None = None, cached: bool = False,
               budget: dict[str, Any] | None = None) -> int:
        details: dict[str, Any] = {"query_id": query_id, "cached": cached, **(budget or {})} if query_id else {}
        return record(self.session, AuditEvent(
            actor=f"service:{requester.service_id}", action=ACTION, purpose=spec.purpose, dataset=spec.dataset,
            decision=decision, reasons=reasons,
            epsilon=from_micro(epsilon_micro) if epsilon_micro is not None else None,
            request_hash=sha256_json(spec.canonical()),
            result_hash=sha256_json(results) if results is not None else None, details=details), now)
