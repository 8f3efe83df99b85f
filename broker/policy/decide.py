"""``decide(request, policy, state) -> Decision``: may this statistic be released, and on what terms?

A pure function (DESIGN §2): no database, no clock, no randomness. The caller reads the budget state and the
release cache, passes them in, and carries out the obligations of an allow. Every applicable reason is
reported, not just the first, in the order of :class:`Reason`; each has a stable code (the API's ``reasons``)
and a plain text in both portal languages.

Two reasons read the request more than the policy:

* ``purpose-version-retired``: a service may pin the purpose version its analysis was designed for
  (``purpose_version``); once the purpose has moved on, consents to that version no longer count, so the
  query is refused rather than silently answered under terms the service did not ask about.
* ``legal-basis-lacking``: a service may state the legal basis it processes under (``legal_basis``). The
  cohort always follows the purpose's own basis: consent purposes count only consenting citizens, other bases
  count every citizen not restricted. A request claiming a basis the purpose lacks (typically a consent-based
  purpose queried "as a public task" to reach citizens who never agreed) is refused, never re-interpreted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from broker.policy.schema import FieldType, Policy, Statistic, Text
from broker.privacy.epsilon import from_micro, to_micro

NUMERIC = (FieldType.integer, FieldType.decimal)
MEASURED = (Statistic.sum, Statistic.mean, Statistic.quantile)


class Reason(StrEnum):
    purpose_not_held = "purpose-not-held"
    purpose_not_active = "purpose-not-active"
    purpose_version_retired = "purpose-version-retired"
    legal_basis_lacking = "legal-basis-lacking"
    dataset_not_in_purpose = "dataset-not-in-purpose"
    field_not_in_purpose = "field-not-in-purpose"
    statistic_not_allowed = "statistic-not-allowed"
    group_by_not_declared = "group-by-not-declared"
    epsilon_above_query_cap = "epsilon-above-query-cap"
    epsilon_above_token_ceiling = "epsilon-above-token-ceiling"
    budget_exhausted = "budget-exhausted"


REASON_TEXTS: dict[Reason, Text] = {
    Reason.purpose_not_held: Text(
        fr="Le service ne détient pas cette finalité.",
        en="The service does not hold this purpose."),
    Reason.purpose_not_active: Text(
        fr="Cette finalité est suspendue ou retirée.",
        en="This purpose is suspended or retired."),
    Reason.purpose_version_retired: Text(
        fr="Cette version de la finalité n'est plus en vigueur : les consentements donnés pour elle ne comptent plus.",
        en="This version of the purpose is retired: consents given to it no longer count."),
    Reason.legal_basis_lacking: Text(
        fr="La finalité ne repose pas sur la base légale invoquée par la requête.",
        en="The purpose does not rest on the legal basis the request invokes."),
    Reason.dataset_not_in_purpose: Text(
        fr="Ce jeu de données n'est pas utilisé par cette finalité.",
        en="This dataset is not used by this purpose."),
    Reason.field_not_in_purpose: Text(
        fr="Ce champ n'est pas utilisé par cette finalité.",
        en="This field is not used by this purpose."),
    Reason.statistic_not_allowed: Text(
        fr="Cette statistique n'est pas autorisée pour cette finalité et ce champ.",
        en="This statistic is not allowed for this purpose and field."),
    Reason.group_by_not_declared: Text(
        fr="Ce regroupement n'est pas déclaré pour ce jeu de données et cette finalité.",
        en="This group-by key is not declared for this dataset and purpose."),
    Reason.epsilon_above_query_cap: Text(
        fr="Le ε demandé dépasse le plafond par requête de la finalité.",
        en="The requested ε exceeds the purpose's per-query cap."),
    Reason.epsilon_above_token_ceiling: Text(
        fr="Le ε demandé dépasse ce que le jeton d'accès autorise pour ce jeu de données.",
        en="The requested ε exceeds what the access token allows for this dataset."),
    Reason.budget_exhausted: Text(
        fr="Le budget de confidentialité de la période ne suffit plus pour cette requête.",
        en="The privacy budget left for this period is too small for this query."),
}


@dataclass(frozen=True)
class TimeWindow:
    """Records whose time field lies in [start, end); either end may be open."""

    start: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True)
class QuerySpec:
    """One parsed statistics request (DESIGN §6), already well-formed (the API checked its shape)."""

    purpose: str
    dataset: str
    statistic: Statistic
    epsilon_micro: int
    measure: str | None = None
    group_by: tuple[str, ...] = ()
    window: TimeWindow = field(default_factory=TimeWindow)
    quantile: float | None = None
    purpose_version: int | None = None
    legal_basis: str | None = None

    @property
    def keys(self) -> tuple[str, ...]:
        """The fields that split the release into cells: group-by keys, then a histogram's field."""
        if self.statistic is Statistic.histogram and self.measure:
            return (*self.group_by, self.measure)
        return self.group_by

    def canonical(self) -> dict[str, Any]:
        """What makes two releases the same answer (the release cache key and the audit's request hash)."""
        return {
            "purpose": self.purpose, "dataset": self.dataset, "statistic": self.statistic.value,
            "measure": self.measure, "group_by": list(self.group_by),
            "from": self.window.start.isoformat() if self.window.start else None,
            "to": self.window.end.isoformat() if self.window.end else None,
            "epsilon_micro": self.epsilon_micro, "quantile": self.quantile,
        }


@dataclass(frozen=True)
class Requester:
    """The client behind the token: its service, the purposes it holds, its RAR ε ceiling for this query."""

    service_id: str
    purposes: frozenset[str]
    #: RFC 9396 ceiling for (purpose, dataset) in micro-ε; None when the token does not cover the dataset.
    epsilon_ceiling_micro: int | None


@dataclass(frozen=True)
class BudgetState:
    """What remains of the two accounts of this period, and whether an identical release is stored."""

    purpose_remaining_micro: int
    service_remaining_micro: int
    cached: bool = False

    @property
    def remaining_micro(self) -> int:
        return min(self.purpose_remaining_micro, self.service_remaining_micro)


@dataclass(frozen=True)
class Obligations:
    """The terms of an allow."""

    #: ε to charge to both accounts before touching data; 0 when the stored release answers.
    epsilon_micro: int
    #: [lower, upper] of each citizen's contribution, in the field's fixed-point units (None for counts).
    clamp: tuple[int, int] | None
    #: Cells whose noisy count is below this are suppressed.
    suppression_threshold: int
    from_cache: bool


@dataclass(frozen=True)
class Denial:
    reason: Reason
    detail: str

    def as_problem_reason(self) -> dict[str, str]:
        text = REASON_TEXTS[self.reason]
        return {"code": self.reason.value, "detail": self.detail, "fr": text.fr, "en": text.en}


@dataclass(frozen=True)
class Decision:
    allowed: bool
    denials: tuple[Denial, ...] = ()
    obligations: Obligations | None = None

    @property
    def reasons(self) -> list[Reason]:
        return [d.reason for d in self.denials]


def decide(request: QuerySpec, requester: Requester, policy: Policy, state: BudgetState) -> Decision:
    """Allow with obligations, or deny with every reason that applies."""
    denials: list[Denial] = []

    def deny(reason: Reason, detail: str) -> None:
        denials.append(Denial(reason, detail))

    purpose = policy.purpose(request.purpose)
    if purpose is None or request.purpose not in requester.purposes:
        # An unknown purpose answers like one not held, so purpose ids cannot be probed through this error.
        deny(Reason.purpose_not_held, f"service {requester.service_id} does not hold purpose {request.purpose}")
        return Decision(allowed=False, denials=tuple(denials))
    if purpose.status != "active":
        deny(Reason.purpose_not_active, f"purpose {purpose.id} is {purpose.status}")
    if request.purpose_version is not None and request.purpose_version != purpose.version:
        deny(Reason.purpose_version_retired,
             f"purpose {purpose.id} is at version {purpose.version}, not {request.purpose_version}")
    if request.legal_basis is not None and request.legal_basis != purpose.legal_basis:
        deny(Reason.legal_basis_lacking, f"purpose {purpose.id} rests on {purpose.legal_basis}, "
                                         f"not on {request.legal_basis}")

    use, dataset = purpose.use_of(request.dataset), policy.dataset(request.dataset)
    clamp: tuple[int, int] | None = None
    if use is None or dataset is None:
        deny(Reason.dataset_not_in_purpose, f"purpose {purpose.id} does not use dataset {request.dataset}")
    else:
        if request.statistic not in use.statistics:
            deny(Reason.statistic_not_allowed, f"{request.statistic} is not allowed on {dataset.id} "
                                               f"for purpose {purpose.id}")
        measure = dataset.field(request.measure) if request.measure else None
        if request.statistic in MEASURED and request.measure:
            if measure is None or request.measure not in use.fields:
                deny(Reason.field_not_in_purpose, f"purpose {purpose.id} does not use field {request.measure}")
            elif measure.type not in NUMERIC:
                deny(Reason.statistic_not_allowed, f"{request.statistic} needs a numeric field")
            else:
                clamp = measure.fixed_bounds()
        elif request.statistic is Statistic.histogram and request.measure:
            if measure is None or request.measure not in (*use.fields, *use.group_by):
                deny(Reason.field_not_in_purpose, f"purpose {purpose.id} does not use field {request.measure}")
            elif measure.type is not FieldType.category:
                deny(Reason.statistic_not_allowed, "a histogram counts the categories of a category field")
        for key in request.group_by:
            if key not in use.group_by or key not in dataset.group_by:
                deny(Reason.group_by_not_declared, f"{key} is not a declared group-by key of {dataset.id} "
                                                   f"for purpose {purpose.id}")

    cap = to_micro(purpose.budget.per_query_epsilon)
    if request.epsilon_micro > cap:
        deny(Reason.epsilon_above_query_cap, f"ε {from_micro(request.epsilon_micro)} exceeds the per-query cap "
                                             f"{from_micro(cap)} of purpose {purpose.id}")
    ceiling = requester.epsilon_ceiling_micro
    if ceiling is None or request.epsilon_micro > ceiling:
        allowed = "nothing" if ceiling is None else f"ε {from_micro(ceiling)}"
        deny(Reason.epsilon_above_token_ceiling, f"the access token allows {allowed} on {request.dataset}")
    # An identical release already paid for answers at no cost, so the budget only matters for a fresh one;
    # a dataset outside the purpose has no account to speak of.
    if use is not None and not state.cached and request.epsilon_micro > state.remaining_micro:
        deny(Reason.budget_exhausted, f"ε {from_micro(request.epsilon_micro)} asked, "
                                      f"{from_micro(max(state.remaining_micro, 0))} left this period")

    if denials:
        return Decision(allowed=False, denials=tuple(denials))
    return Decision(allowed=True, obligations=Obligations(
        epsilon_micro=0 if state.cached else request.epsilon_micro, clamp=clamp,
        suppression_threshold=policy.broker.suppression_threshold, from_cache=state.cached))
