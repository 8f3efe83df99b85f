"""``POST /v1/outcomes``: a service reports an outcome of one of its own purposes (issue 6, DESIGN §6).

A purpose the token does not hold (or the policy no longer grants the service) is 403 problem details of type
``…/purpose-not-held``; the refusal is audited and returned rather than raised, so its audit entry commits.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Security
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, model_validator

from broker.api.deps import RuntimeDep, SessionDep
from broker.api.problems import problem_response
from broker.exchange.outcomes import OutcomeDomain, OutcomeInput, OutcomeService, outcome_json
from broker.oauth.guard import require_client
from broker.oauth.principal import ClientPrincipal
from broker.scopes import ANY_PURPOSE

router = APIRouter(tags=["outcomes"])
Client = Annotated[ClientPrincipal, Security(require_client, scopes=[ANY_PURPOSE])]
# Exact decimals, sent as JSON strings or numbers; bounded so a report cannot carry an absurd figure.
Amount = Annotated[Decimal, Field(max_digits=20, decimal_places=6, allow_inf_nan=False)]


class Period(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    start: date = Field(alias="from")
    end: date = Field(alias="to")

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        if self.end < self.start:
            raise ValueError("the period ends before it starts")
        return self


class OutcomeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    purpose: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{1,62}$")]
    metric: str = Field(min_length=1, max_length=200)
    value: Amount
    baseline: Amount
    unit: str = Field(min_length=1, max_length=32, description="e.g. EUR for the economic frame, % or minutes")
    period: Period
    evidence: AnyHttpUrl = Field(description="A link to the evidence behind the figure.")
    domain: OutcomeDomain = Field(description="economic (GDP-style frame) or one of the nine GNH domains")
    note: str | None = Field(default=None, max_length=2000)

    def outcome(self) -> OutcomeInput:
        return OutcomeInput(purpose_id=self.purpose, metric=self.metric, value=self.value, baseline=self.baseline,
                            unit=self.unit, period_start=self.period.start, period_end=self.period.end,
                            evidence_url=str(self.evidence), domain=self.domain, note=self.note)


@router.post("/v1/outcomes", status_code=201,
             responses={403: {"description": "The service does not hold this purpose."},
                        422: {"description": "Malformed report."}})
def post_outcome(body: OutcomeRequest, client: Client, session: SessionDep, runtime: RuntimeDep) -> Any:
    """Report an outcome of one of the service's own purposes."""
    held = frozenset(p for p in client.purposes if client.holds_purpose(p))
    result = OutcomeService(session, runtime.policy).report(client.service.id, held, body.outcome(),
                                                             runtime.clock.now())
    if isinstance(result, Exception):
        return problem_response(result.problem())
    return outcome_json(result)
