"""``POST /v1/queries`` and ``GET /v1/budgets``: city services ask for DP statistics and read their budgets.

DESIGN §6. A denial is 403 problem details with ``reasons`` (type ``…/query-denied``, or ``…/budget-exhausted``
with ``budget_remaining`` when the budget is the only reason); a malformed request is 422. The route returns
a refusal rather than raising it, so the unit of work commits its audit entry (and nothing else).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Security
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from broker.api.deps import RuntimeDep, SessionDep
from broker.api.problems import problem_response
from broker.oauth.guard import require_client
from broker.oauth.principal import ClientPrincipal
from broker.policy.decide import QuerySpec, Requester, TimeWindow
from broker.policy.schema import LEGAL_BASES, Statistic
from broker.privacy.budget import BudgetLedger
from broker.privacy.epsilon import from_micro, is_whole_micro, to_micro
from broker.privacy.queries import QueryService
from broker.scopes import ANY_PURPOSE

router = APIRouter(tags=["statistics"])
Client = Annotated[ClientPrincipal, Security(require_client, scopes=[ANY_PURPOSE])]
Identifier = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{1,62}$")]
MAX_GROUP_KEYS = 2


class Window(BaseModel):
    """Records whose time field lies in [from, to); either end may be left open."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    start: AwareDatetime | None = Field(default=None, alias="from")
    end: AwareDatetime | None = Field(default=None, alias="to")

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise ValueError("from must be before to")
        return self


class QueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    purpose: Identifier
    dataset: Identifier
    statistic: Statistic
    measure: Identifier | None = Field(
        default=None, description="The numeric field of sum, mean and quantile; the category field of a histogram.")
    group_by: list[Identifier] = Field(default_factory=list, max_length=MAX_GROUP_KEYS)
    where: Window | None = None
    epsilon: float = Field(gt=0, le=10, allow_inf_nan=False, description="Whole micro-ε (six decimals at most).")
    quantile: float | None = Field(default=None, gt=0, lt=1, description="Quantile statistic only; default 0.5.")
    purpose_version: int | None = Field(default=None, ge=1, description="Refuse if the purpose has moved on.")
    legal_basis: str | None = Field(default=None, description="The basis the service processes under, if stated.")

    @field_validator("epsilon")
    @classmethod
    def _micro(cls, value: float) -> float:
        if not is_whole_micro(value):
            raise ValueError("epsilon has at most six decimal places")
        return value

    @field_validator("legal_basis")
    @classmethod
    def _known_basis(cls, value: str | None) -> str | None:
        if value is not None and value not in LEGAL_BASES:
            raise ValueError("unknown legal basis")
        return value

    @model_validator(mode="after")
    def _shape(self) -> QueryRequest:
        if len(set(self.group_by)) != len(self.group_by):
            raise ValueError("group_by repeats a key")
        needs_measure = self.statistic is not Statistic.count
        if needs_measure and self.measure is None:
            raise ValueError(f"{self.statistic.value} needs a measure")
        if not needs_measure and self.measure is not None:
            raise ValueError("count takes no measure")
        if self.statistic is Statistic.histogram and self.measure in self.group_by:
            raise ValueError("a histogram's field cannot also be a group_by key")
        if self.quantile is not None and self.statistic is not Statistic.quantile:
            raise ValueError("quantile is for the quantile statistic only")
        return self

    def spec(self) -> QuerySpec:
        window = TimeWindow(self.where.start, self.where.end) if self.where else TimeWindow()
        return QuerySpec(purpose=self.purpose, dataset=self.dataset, statistic=self.statistic,
                         epsilon_micro=to_micro(self.epsilon), measure=self.measure, group_by=tuple(self.group_by),
                         window=window, quantile=self.quantile, purpose_version=self.purpose_version,
                         legal_basis=self.legal_basis)


class ResultCell(BaseModel):
    group: dict[str, str]
    value: int | float | None
    ci95: list[int | float] | None = Field(description="95% interval for the noise (not for clamping bias).")
    suppressed: bool


class QueryAnswer(BaseModel):
    query_id: str
    results: list[ResultCell]
    epsilon_charged: float
    budget_remaining: float = Field(description="ε this service may still spend on (purpose, dataset) this period.")
    audit_index: int
    cached: bool = Field(description="Answered from an identical earlier release, at no cost.")


def requester_of(client: ClientPrincipal, purpose: str, dataset: str) -> Requester:
    ceiling = client.epsilon_ceiling(purpose, dataset)
    return Requester(service_id=client.service.id, purposes=frozenset(client.purposes),
                     epsilon_ceiling_micro=to_micro(ceiling) if ceiling is not None else None)


@router.post("/v1/queries", response_model=QueryAnswer,
             responses={403: {"description": "Refused by policy (reasons) or budget exhausted."},
                        422: {"description": "Malformed request."}})
def post_query(body: QueryRequest, client: Client, session: SessionDep, runtime: RuntimeDep) -> Any:
    """A differentially private statistic under one purpose the service holds."""
    outcome = QueryService(session, runtime.policy, runtime.secrets, runtime.clock).answer(
        body.spec(), requester_of(client, body.purpose, body.dataset))
    if outcome.refusal is not None:
        return problem_response(outcome.refusal.problem())
    answer = outcome.answer
    if answer is None:
        raise RuntimeError("a query outcome carries an answer or a refusal")
    return QueryAnswer(query_id=answer.query_id, results=[ResultCell(**cell) for cell in answer.results],
                       epsilon_charged=from_micro(answer.epsilon_charged_micro),
                       budget_remaining=from_micro(answer.budget_remaining_micro), audit_index=answer.audit_index,
                       cached=answer.cached)


@router.get("/v1/budgets")
def get_budgets(client: Client, session: SessionDep, runtime: RuntimeDep) -> dict[str, Any]:
    """This period's budget accounts of every (purpose, dataset) the service may query."""
    now: datetime = runtime.clock.now()
    purposes = [p for p in runtime.policy.purposes if p.id in client.purposes]
    accounts = BudgetLedger(session, runtime.policy).for_service(client.service.id, purposes, now)
    return {"service": client.service.id, "budgets": [
        {"purpose": a.shared.purpose_id, "dataset": a.shared.dataset_id, "period": a.shared.period,
         "remaining": from_micro(a.remaining_micro), "purpose_account": a.shared.as_json(),
         "service_account": a.service.as_json()}
        for a in accounts]}
