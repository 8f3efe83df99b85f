"""City benefit metrics, per purpose and city-wide (``GET /v1/benefits``, issue 6).

Everything here reads what is already public or already aggregated, so it costs no privacy budget:

* releases and ε used: the per-(purpose, dataset) counters (:mod:`broker.privacy.counters`);
* contributing citizens, as a DP count: **no new measurement**. It is the noisy total of the purpose's latest
  released count (or histogram) query, the sum of its released cells. Those cells are disjoint and each
  citizen is in exactly one, so the sum is a count of the citizens who contributed to that release; re-reading
  a released value is post-processing. Suppressed cells were never released, so when some are suppressed
  the figure is a lower estimate (``suppressed_cells`` says how many). No count release, no figure (null,
  with the reason). City-wide, citizens who contribute to several purposes cannot be told apart without a
  new measurement, so the city-wide figure is the largest per-purpose one: a lower estimate, labelled so.
* returns paid: Σ over every citizen of their contribution ledger (:meth:`ContributionLedger.city_releases`)
  × the amount per release, exact decimals; equal by construction to the sum of the citizens' ledgers;
* outcomes as services reported them, summarised under the economic (GDP-style) frame and the wellbeing
  (Gross National Happiness) frame side by side, never converted into each other;
* the running cost a purpose declares, and a cost-benefit ratio where it can be computed (see
  :func:`cost_benefit`), with the reason where it cannot.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from broker.exchange.contributions import ContributionLedger, per_release
from broker.exchange.models import OutcomeReport
from broker.exchange.outcomes import WELLBEING_DOMAINS, OutcomeDomain, OutcomeService, change_of, outcome_json
from broker.policy.schema import PAID_KINDS, Policy, Purpose
from broker.privacy.epsilon import from_micro
from broker.privacy.models import PrivacyCounter, Release

MONEY_UNIT = "EUR"
CENT = Decimal("0.01")


def money(amount: Decimal) -> str:
    """An exact decimal as text, with at least two places (1.5 → "1.50", 0.125 stays "0.125")."""
    return str(amount.quantize(CENT)) if amount == amount.quantize(CENT) else str(amount.normalize())


@dataclass(frozen=True)
class DpCount:
    value: int | None
    release_id: str | None
    suppressed_cells: int
    reason: str | None

    def as_json(self) -> dict[str, Any]:
        return {"value": self.value, "release_id": self.release_id, "suppressed_cells": self.suppressed_cells,
                "lower_estimate": self.suppressed_cells > 0, "reason": self.reason,
                "method": "sum of the released cells of the latest count or histogram release (post-processing, "
                          "no budget spent)"}


def frames(reports: list[OutcomeReport]) -> dict[str, Any]:
    """The GDP-style and wellbeing summaries of ``reports``, side by side."""
    economic: dict[str, Decimal] = defaultdict(Decimal)
    wellbeing: dict[str, list[dict[str, Any]]] = {d.value: [] for d in WELLBEING_DOMAINS}
    for report in reports:
        if report.domain == OutcomeDomain.economic:
            economic[report.unit] += change_of(report)
        else:
            wellbeing[report.domain].append({"metric": report.metric, "change": str(change_of(report)),
                                             "unit": report.unit, "purpose": report.purpose_id})
    return {
        "economic": {"frame": "GDP-style: money saved or earned, value − baseline, summed per unit",
                     "totals": {unit: str(total) for unit, total in sorted(economic.items())}},
        "wellbeing": {"frame": "Gross National Happiness: the nine domains, each outcome in its own unit",
                      "domains": wellbeing},
    }


def cost_benefit(running_cost: Decimal | None, reports: list[OutcomeReport]) -> dict[str, Any]:
    """Economic benefit (Σ value − baseline of economic outcomes in EUR whose period lies within one calendar
    year) over the declared yearly running cost, per year. Wellbeing outcomes have no price and stay beside it."""
    if running_cost is None:
        return {"by_year": {}, "reason": "no running cost declared"}
    if running_cost == 0:
        return {"by_year": {}, "reason": "the declared running cost is zero"}
    benefit: dict[int, Decimal] = defaultdict(Decimal)
    for report in reports:
        if (report.domain == OutcomeDomain.economic and report.unit == MONEY_UNIT
                and report.period_start.year == report.period_end.year):
            benefit[report.period_end.year] += change_of(report)
    if not benefit:
        return {"by_year": {}, "reason": "no economic outcome in EUR reported within one calendar year; wellbeing "
                                          "outcomes are shown beside it and not converted to money"}
    return {"by_year": {str(year): {"benefit": money(amount), "cost": money(running_cost),
                                    "ratio": str((amount / running_cost).quantize(CENT))}
                        for year, amount in sorted(benefit.items())}, "reason": None}


class Benefits:
    def __init__(self, session: Session, policy: Policy) -> None:
        self.session = session
        self.policy = policy

    def report(self, now: datetime) -> dict[str, Any]:
        counters = self._counters()
        contributions = ContributionLedger(self.session, self.policy).city_releases(now)
        reports = OutcomeService(self.session, self.policy).for_purposes()
        by_purpose_reports: dict[str, list[OutcomeReport]] = defaultdict(list)
        for report in reports:
            by_purpose_reports[report.purpose_id].append(report)
        purposes = [self._purpose(p, counters.get(p.id, (0, 0)), contributions.get(p.id, 0),
                                  by_purpose_reports.get(p.id, [])) for p in self.policy.purposes]
        epsilon_micro = sum(eps for _, eps in counters.values())
        return {"purposes": purposes, "city": self._city(purposes, reports, epsilon_micro)}

    # -- internals ----------------------------------------------------------------------------------------
    def _counters(self) -> dict[str, tuple[int, int]]:
        rows = self.session.execute(
            select(PrivacyCounter.purpose_id, func.sum(PrivacyCounter.releases), func.sum(PrivacyCounter.epsilon_micro))
            .group_by(PrivacyCounter.purpose_id)).all()
        return {purpose_id: (int(releases or 0), int(eps or 0)) for purpose_id, releases, eps in rows}

    def _purpose(self, purpose: Purpose, counter: tuple[int, int], contributed: int,
                 reports: list[OutcomeReport]) -> dict[str, Any]:
        releases, epsilon_micro = counter
        paid = {kind: amount * contributed for kind, amount in per_release(purpose).items()}
        cost = purpose.running_cost.amount if purpose.running_cost is not None else None
        return {
            "purpose": purpose.id, "version": purpose.version, "title": purpose.title.model_dump(),
            "releases": releases, "epsilon_used": from_micro(epsilon_micro),
            "contributing_citizens": self.contributing_citizens(purpose).as_json(),
            "contributions": contributed,
            "returns_paid": {kind: money(amount) for kind, amount in sorted(paid.items())},
            "returns_in_kind": [{"kind": str(r.kind), "description": r.description.model_dump()}
                                for r in purpose.returns if r.kind not in PAID_KINDS],
            "currency": MONEY_UNIT,
            "outcomes": [outcome_json(r) for r in reports],
            "frames": frames(reports),
            "running_cost": {"amount": money(cost), "currency": MONEY_UNIT, "period": "year"} if cost is not None
            else None,
            "cost_benefit": cost_benefit(cost, reports),
            "publish_open_data": purpose.publish_open_data,
        }

    def contributing_citizens(self, purpose: Purpose) -> DpCount:
        counting = or_(col(Release.spec).contains('"statistic":"count"'),
                       col(Release.spec).contains('"statistic":"histogram"'))
        latest = self.session.exec(select(Release).where(Release.purpose_id == purpose.id, counting)
                                   .order_by(col(Release.released_at).desc(), col(Release.id)).limit(1)).first()
        if latest is None:
            return DpCount(None, None, 0, "no count or histogram has been released for this purpose yet")
        cells = json.loads(latest.results)
        shown = [c for c in cells if not c.get("suppressed") and c.get("value") is not None]
        return DpCount(max(sum(int(c["value"]) for c in shown), 0), latest.id, len(cells) - len(shown), None)

    def _city(self, purposes: list[dict[str, Any]], reports: list[OutcomeReport],
              epsilon_micro: int) -> dict[str, Any]:
        paid: dict[str, Decimal] = defaultdict(Decimal)
        for item in purposes:
            for kind, amount in item["returns_paid"].items():
                paid[kind] += Decimal(amount)
        counted = [p["contributing_citizens"]["value"] for p in purposes
                   if p["contributing_citizens"]["value"] is not None]
        declared = [p for p in self.policy.purposes if p.running_cost is not None]
        cost = sum((p.running_cost.amount for p in declared if p.running_cost is not None), Decimal(0))
        costed = {p.id for p in declared}
        ratio = cost_benefit(cost if declared else None, [r for r in reports if r.purpose_id in costed])
        return {
            "releases": sum(p["releases"] for p in purposes),
            # Summed over every (purpose, dataset): a bound on what any one citizen lost (sequential composition).
            "epsilon_used": from_micro(epsilon_micro),
            "contributing_citizens": {
                "value": max(counted) if counted else None, "lower_estimate": True,
                "method": "the largest per-purpose figure: telling apart citizens who contribute to several "
                          "purposes would need a new measurement"},
            "contributions": sum(p["contributions"] for p in purposes),
            "returns_paid": {kind: money(amount) for kind, amount in sorted(paid.items())},
            "currency": MONEY_UNIT,
            "outcomes": len(reports),
            "frames": frames(reports),
            "running_cost": {"amount": money(cost), "currency": MONEY_UNIT, "period": "year",
                             "purposes_without": sorted(p.id for p in self.policy.purposes if p.id not in costed)},
            "cost_benefit": ratio,
        }
