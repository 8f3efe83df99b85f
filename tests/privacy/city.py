"""A tiny city for the privacy tests: citizens, consents, vault records and the two ways to total a query.

Citizens and consents go through the real services (``CitizenService``, ``ConsentLedger``); vault rows are
inserted with SQLAlchemy Core, as ingest stores them (fixed-point integers, UTC instants).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert

from broker.consent.ledger import ConsentLedger
from broker.consent.models import ConsentRecord
from broker.db import session_scope
from broker.identity.citizens import CitizenService
from broker.identity.models import Citizen
from broker.keys import Secrets
from broker.policy import Policy
from broker.policy.decide import QuerySpec, Requester
from broker.policy.schema import Statistic
from broker.privacy.aggregates import Aggregates, Totals
from broker.privacy.cohort import Cohorts
from broker.privacy.plan import QueryPlan, build_plan
from broker.privacy.queries import QueryOutcome, QueryService
from broker.privacy.reference import ReferenceTotals, reference_totals
from broker.timeutil import FixedClock
from broker.vault.tables import vault_metadata

ADULT = date(1985, 6, 1)
#: The air-quality study: consent-based, adults and minors from 15, mean/count/quantile on air-exposure.
AIR = "air-quality-study"
AIR_DATA = "air-exposure"
SERVICE = "environment-health"


def spec(statistic: Statistic = Statistic.mean, *, purpose: str = AIR, dataset: str = AIR_DATA,
         measure: str | None = "pm25", epsilon: float = 0.1, **kw: Any) -> QuerySpec:
    if statistic is Statistic.count:
        measure = None
    return QuerySpec(purpose=purpose, dataset=dataset, statistic=statistic, measure=measure,
                     epsilon_micro=round(epsilon * 1_000_000), **kw)


def requester(service: str = SERVICE, purposes: tuple[str, ...] = (AIR, "public-health-study"),
              ceiling: float | None = 0.5) -> Requester:
    return Requester(service_id=service, purposes=frozenset(purposes),
                     epsilon_ceiling_micro=None if ceiling is None else round(ceiling * 1_000_000))


class City:
    def __init__(self, engine: Engine, policy: Policy, secrets: Secrets, clock: FixedClock) -> None:
        self.engine = engine
        self.policy = policy
        self.secrets = secrets
        self.clock = clock
        self.tables = vault_metadata(policy)[1]

    # -- people ---------------------------------------------------------------------------------------------
    def citizen(self, *, born: date | None = ADULT, cap: float | None = None, district: str = "lyon-3") -> Citizen:
        with session_scope(self.engine) as session:
            citizen = CitizenService(session, self.secrets).register(
                email=f"{uuid.uuid4().hex}@lyon.example", name="Habitant", birth_date=born, district=district,
                locale="fr", now=self.clock.now())
            citizen.privacy_cap = cap
            session.add(citizen)
            return citizen

    def consent(self, citizen: Citizen, purpose: str = AIR, state: str = "given", **kw: Any) -> ConsentRecord:
        with session_scope(self.engine) as session:
            ledger = ConsentLedger(session, self.policy, self.secrets, self.clock)
            return ledger.set_state(citizen, purpose, state, **kw)

    def consenting(self, n: int = 1, purpose: str = AIR, **kw: Any) -> list[Citizen]:
        people = [self.citizen(**kw) for _ in range(n)]
        for person in people:
            self.consent(person, purpose, explicit=self.policy.purpose(purpose).special_category)  # type: ignore[union-attr]
        return people

    def restrict(self, citizen: Citizen) -> None:
        with session_scope(self.engine) as session:
            stored = session.get(Citizen, citizen.id)
            CitizenService(session, self.secrets).restrict(stored, self.clock.now())  # type: ignore[arg-type]

    # -- records --------------------------------------------------------------------------------------------
    def records(self, citizen: Citizen | str, dataset: str = AIR_DATA, *rows: dict[str, Any]) -> None:
        """Rows of ``dataset`` for the citizen; the time field defaults to a day before now, in order."""
        dataset_model = self.policy.dataset(dataset)
        assert dataset_model is not None
        pseudonym = citizen if isinstance(citizen, str) else citizen.pseudonym
        base = self.clock.now() - timedelta(days=1)
        values = []
        for i, row in enumerate(rows or ({},)):
            full = {f.name: None for f in dataset_model.fields}
            full.update({"district": "lyon-3"} if "district" in full else {})
            full[dataset_model.time_field] = base + timedelta(minutes=i)
            full.update(row)
            values.append({"pseudonym": pseudonym, "batch_id": None, **full})
        with session_scope(self.engine) as session:
            session.execute(insert(self.tables[dataset]), values)

    def reading(self, pm25: float, *, district: str = "lyon-3", at: datetime | None = None) -> dict[str, Any]:
        row: dict[str, Any] = {"pm25": round(pm25 * 100), "district": district}
        if at is not None:
            row["day"] = at
        return row

    # -- totals -----------------------------------------------------------------------------------------------
    def plan(self, query: QuerySpec) -> QueryPlan:
        dataset = self.policy.dataset(query.dataset)
        assert dataset is not None
        measure = dataset.field(query.measure) if query.measure else None
        clamp = measure.fixed_bounds() if measure is not None and measure.type != "category" else None
        return build_plan(query, self.policy, clamp)

    def totals(self, query: QuerySpec, at: datetime | None = None) -> Totals:
        """The pushed-down totals, before noise, with the cohort the query would use."""
        purpose = self.policy.purpose(query.purpose)
        assert purpose is not None
        with session_scope(self.engine) as session:
            cohort = Cohorts(session, self.policy, self.secrets).cohort(purpose, at or self.clock.now(),
                                                                          query.epsilon_micro)
            return Aggregates.for_policy(session, self.policy).totals(self.plan(query), cohort)

    def reference(self, query: QuerySpec) -> ReferenceTotals:
        purpose = self.policy.purpose(query.purpose)
        assert purpose is not None
        with session_scope(self.engine) as session:
            return reference_totals(session, self.policy, self.secrets, self.plan(query), purpose, self.clock.now())

    # -- queries --------------------------------------------------------------------------------------------
    def ask(self, query: QuerySpec, who: Requester | None = None) -> QueryOutcome:
        with session_scope(self.engine) as session:
            return QueryService(session, self.policy, self.secrets, self.clock).answer(query, who or requester())
