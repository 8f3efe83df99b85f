"""What one citizen got back (``GET /v1/me/value``): their contribution ledger by month, totals by kind, the
returns in kind of the purposes they contributed to, the outcomes reported for those purposes, and a plain
statement in French and English. Read-only: nothing is written per citizen, here or at query time.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlmodel import Session

from broker.errors import NotFound
from broker.exchange.benefits import MONEY_UNIT, money
from broker.exchange.contributions import ContributionLedger, Contributions
from broker.exchange.models import OutcomeReport
from broker.exchange.outcomes import OutcomeService, change_of, outcome_json
from broker.identity.models import Citizen
from broker.policy.schema import PAID_KINDS, Policy

#: Outcomes named in the statement; the full list is in ``outcomes``.
STATEMENT_OUTCOMES = 3


def _amount(amount: Decimal, language: str) -> str:
    text = money(amount)
    return f"{text.replace('.', ',')} €" if language == "fr" else f"€{text}"


def _outcome_phrase(report: OutcomeReport, language: str) -> str:
    change = change_of(report)
    sign = "+" if change > 0 else ""
    period = f"{report.period_start.isoformat()} – {report.period_end.isoformat()}"
    if language == "fr":
        return f"{report.metric} : {report.value} {report.unit} (référence {report.baseline}, {sign}{change}, {period})"
    return f"{report.metric}: {report.value} {report.unit} (baseline {report.baseline}, {sign}{change}, {period})"


def statement(contributions: Contributions, reports: list[OutcomeReport]) -> dict[str, str]:
    n, k, total = contributions.releases, len(contributions.purposes), contributions.total
    named = [r for r in reversed(reports)][:STATEMENT_OUTCOMES]
    out = {}
    for language in ("fr", "en"):
        phrases = "; ".join(_outcome_phrase(r, language) for r in named)
        if language == "fr":
            outcomes = (f"les résultats rapportés sont : {phrases}." if named
                        else "aucun résultat n’a encore été rapporté.")
            out["fr"] = (f"Vos données ont contribué à {n} publication{'s' if n != 1 else ''} statistique"
                         f"{'s' if n != 1 else ''} pour {k} finalité{'s' if k != 1 else ''} ; vous avez reçu "
                         f"{_amount(total, 'fr')} ; {outcomes}")
        else:
            outcomes = f"the outcomes reported were: {phrases}." if named else "no outcome has been reported yet."
            out["en"] = (f"Your data contributed to {n} release{'s' if n != 1 else ''} for {k} "
                         f"purpose{'s' if k != 1 else ''}; you received {_amount(total, 'en')}; {outcomes}")
    return out


class CitizenValue:
    def __init__(self, session: Session, policy: Policy) -> None:
        self.session = session
        self.policy = policy

    def view(self, citizen_id: str, now: datetime) -> dict[str, Any]:
        citizen = self.session.get(Citizen, citizen_id)
        if citizen is None:
            raise NotFound("no such citizen")
        contributions = ContributionLedger(self.session, self.policy).for_citizen(citizen, now)
        purposes = contributions.purposes
        reports = OutcomeService(self.session, self.policy).for_purposes(purposes) if purposes else []
        months: dict[str, dict[str, Any]] = {}
        for line in contributions.lines:
            month = months.setdefault(line.month, {"month": line.month, "releases": 0, "earned": {}, "purposes": []})
            month["releases"] += line.releases
            for kind, amount in line.earned.items():
                month["earned"][kind] = money(Decimal(month["earned"].get(kind, "0")) + amount)
            month["purposes"].append({"purpose": line.purpose_id, "releases": line.releases,
                                      "earned": {kind: money(a) for kind, a in sorted(line.earned.items())}})
        in_kind = []
        for purpose_id in purposes:
            purpose = self.policy.purpose(purpose_id)
            if purpose is not None:
                in_kind += [{"purpose": purpose_id, "kind": str(r.kind), "description": r.description.model_dump()}
                            for r in purpose.returns if r.kind not in PAID_KINDS]
        return {
            "currency": MONEY_UNIT,
            "releases": contributions.releases,
            "purposes": purposes,
            "months": list(months.values()),
            "totals": {kind: money(amount) for kind, amount in sorted(contributions.totals_by_kind.items())},
            "total": money(contributions.total),
            "returns_in_kind": in_kind,
            "outcomes": [outcome_json(r) for r in reports],
            "statement": statement(contributions, reports),
        }
