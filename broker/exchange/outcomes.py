"""Outcome reports: what a service says a purpose achieved, in one of two frames the city compares (issue 6).

* **Economic** (a GDP-style frame): money saved or earned, e.g. ``unit: EUR``.
* **Wellbeing**: one of the nine domains of Bhutan's Gross National Happiness index (psychological
  wellbeing, health, education, time use, cultural diversity and resilience, good governance, community
  vitality, ecological diversity and resilience, living standards), in whatever unit the metric has.

A service reports only for purposes it holds (the route checks the token's scope first; :meth:`report` checks
the policy's service declaration again, so no caller can skip it). The report and its audit entry commit in
one transaction. Values stay exact decimal strings: a report reads back exactly as it was sent.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlmodel import Session, col, select

from broker.audit import AuditEvent, record
from broker.errors import Forbidden, InvalidRequest
from broker.exchange.models import OutcomeReport
from broker.policy.schema import Policy
from broker.timeutil import as_utc

ACTION = "outcome.reported"


class OutcomeDomain(StrEnum):
    economic = "economic"
    psychological_wellbeing = "psychological_wellbeing"
    health = "health"
    education = "education"
    time_use = "time_use"
    cultural_diversity_and_resilience = "cultural_diversity_and_resilience"
    good_governance = "good_governance"
    community_vitality = "community_vitality"
    ecological_diversity_and_resilience = "ecological_diversity_and_resilience"
    living_standards = "living_standards"


#: The nine Gross National Happiness domains: the wellbeing frame.
WELLBEING_DOMAINS = tuple(d for d in OutcomeDomain if d is not OutcomeDomain.economic)


class OutcomeNotHeld(Forbidden):
    code, status, title = "purpose-not-held", 403, "Purpose not held"


@dataclass(frozen=True)
class OutcomeInput:
    purpose_id: str
    metric: str
    value: Decimal
    baseline: Decimal
    unit: str
    period_start: date
    period_end: date
    evidence_url: str
    domain: OutcomeDomain
    note: str | None = None


def outcome_json(report: OutcomeReport) -> dict[str, Any]:
    return {"id": report.id, "service": report.service_id, "purpose": report.purpose_id, "metric": report.metric,
            "value": report.value, "baseline": report.baseline, "change": str(change_of(report)),
            "unit": report.unit,
            "period": {"from": report.period_start.isoformat(), "to": report.period_end.isoformat()},
            "evidence_url": report.evidence_url, "domain": report.domain,
            "frame": "economic" if report.domain == OutcomeDomain.economic else "wellbeing",
            "reported_at": as_utc(report.reported_at).isoformat(), "audit_index": report.audit_index}


def change_of(report: OutcomeReport) -> Decimal:
    """The outcome measured against its baseline (value − baseline), exactly."""
    return Decimal(report.value) - Decimal(report.baseline)


class OutcomeService:
    def __init__(self, session: Session, policy: Policy) -> None:
        self.session = session
        self.policy = policy

    def report(self, service_id: str, held: frozenset[str], outcome: OutcomeInput,
               now: datetime) -> OutcomeReport | OutcomeNotHeld:
        """Store the report, or refuse it (returned, not raised, so the caller commits the refusal's audit
        entry and nothing else). ``held``: the purposes the caller's token grants."""
        purpose = self.policy.purpose(outcome.purpose_id)
        service = self.policy.service(service_id)
        if purpose is None or service is None or purpose.id not in service.purposes or purpose.id not in held:
            # An unknown purpose answers like one the service does not hold, so purposes cannot be probed.
            index = record(self.session, AuditEvent(
                actor=f"service:{service_id}", action=ACTION, purpose=outcome.purpose_id[:64], decision="deny",
                reasons=["purpose-not-held"], details={"metric": outcome.metric}), now)
            return OutcomeNotHeld(f"this service does not hold purpose {outcome.purpose_id!r}", audit_index=index)
        if outcome.period_end < outcome.period_start:
            raise InvalidRequest("the period ends before it starts")
        report = OutcomeReport(
            id=str(uuid.uuid4()), service_id=service_id, purpose_id=purpose.id, metric=outcome.metric,
            value=str(outcome.value), baseline=str(outcome.baseline), unit=outcome.unit,
            period_start=outcome.period_start, period_end=outcome.period_end, evidence_url=outcome.evidence_url,
            domain=outcome.domain.value, reported_at=as_utc(now), audit_index=-1, note=outcome.note)
        report.audit_index = record(self.session, AuditEvent(
            actor=f"service:{service_id}", action=ACTION, purpose=purpose.id, decision="allow",
            details={"outcome_id": report.id, "metric": outcome.metric, "domain": outcome.domain.value,
                     "value": report.value, "baseline": report.baseline, "unit": outcome.unit,
                     "period": [outcome.period_start.isoformat(), outcome.period_end.isoformat()],
                     "evidence_url": outcome.evidence_url}), now)
        self.session.add(report)
        self.session.flush()
        return report

    def for_purposes(self, purpose_ids: list[str] | None = None) -> list[OutcomeReport]:
        stmt = select(OutcomeReport)
        if purpose_ids is not None:
            stmt = stmt.where(col(OutcomeReport.purpose_id).in_(purpose_ids))
        return list(self.session.exec(stmt.order_by(col(OutcomeReport.period_end), col(OutcomeReport.id))).all())
