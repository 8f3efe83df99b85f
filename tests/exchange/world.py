"""A small city for the exchange tests: citizens and consents through the real services, and releases made
through the real query path (:class:`broker.privacy.queries.QueryService`, which advances the counters)."""

from __future__ import annotations

import itertools
import uuid
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import Engine
from sqlmodel import Session

from broker.consent.ledger import ConsentLedger
from broker.db import session_scope
from broker.exchange.contributions import ContributionLedger, Contributions
from broker.identity.citizens import CitizenService
from broker.identity.models import Citizen
from broker.keys import Secrets
from broker.policy import Policy
from broker.policy.decide import QuerySpec, Requester, TimeWindow
from broker.policy.schema import Statistic
from broker.privacy.queries import QueryService
from broker.rights import erase_citizen
from broker.timeutil import FixedClock

AIR, AIR_DATA = "air-quality-study", "air-exposure"  # money, €0.05 a release, publishes open data
PARKING, PARKING_DATA = "parking-availability", "parking-sessions"  # voucher, €0.01, publishes
ENERGY, ENERGY_DATA = "energy-renovation", "household-energy"  # voucher, €0.10, does not publish
EPSILON_MICRO = 10_000  # ε 0.01: hundreds of releases fit every budget


class World:
    def __init__(self, engine: Engine, policy: Policy, secrets: Secrets, clock: FixedClock) -> None:
        self.engine, self.policy, self.secrets, self.clock = engine, policy, secrets, clock
        self._distinct = itertools.count(1)

    def citizen(self, born: date | None = date(1985, 6, 1)) -> Citizen:
        with session_scope(self.engine) as session:
            return CitizenService(session, self.secrets).register(
                email=f"{uuid.uuid4().hex}@lyon.example", name="Habitant", birth_date=born, district="lyon-3",
                locale="fr", now=self.clock.now())

    def consent(self, citizen: Citizen, purpose: str = AIR, state: str = "given") -> None:
        with session_scope(self.engine) as session:
            ConsentLedger(session, self.policy, self.secrets, self.clock).set_state(citizen, purpose, state)
        self.clock.advance(minutes=1)

    def erase(self, citizen: Citizen) -> None:
        with session_scope(self.engine) as session:
            stored = session.get(Citizen, citizen.id)
            assert stored is not None
            erase_citizen(session, self.policy, stored, self.clock.now())
        self.clock.advance(minutes=1)

    def releases(self, n: int, purpose: str = AIR, dataset: str = AIR_DATA) -> list[str]:
        """``n`` fresh releases of (purpose, dataset), one minute apart, each a distinct count query."""
        service = next(s.id for s in self.policy.services if purpose in s.purposes and s.kind == "service")
        who = Requester(service_id=service, purposes=frozenset({purpose}), epsilon_ceiling_micro=EPSILON_MICRO)
        ids = []
        for _ in range(n):
            # A distinct window per query: an identical one would be served from the stored release, free.
            start = self.clock.now() - timedelta(days=30, seconds=next(self._distinct))
            spec = QuerySpec(purpose=purpose, dataset=dataset, statistic=Statistic.count, measure=None,
                             epsilon_micro=EPSILON_MICRO, window=TimeWindow(start=start))
            with session_scope(self.engine) as session:
                outcome = QueryService(session, self.policy, self.secrets, self.clock).answer(spec, who)
            assert outcome.answer is not None and not outcome.answer.cached, outcome.refusal
            ids.append(outcome.answer.query_id)
            self.clock.advance(minutes=1)
        return ids

    def ledger(self, citizen: Citizen) -> Contributions:
        with Session(self.engine) as session:
            stored = session.get(Citizen, citizen.id)
            assert stored is not None
            return ContributionLedger(session, self.policy).for_citizen(stored, self.clock.now())


def euros(text: str) -> Decimal:
    return Decimal(text)
