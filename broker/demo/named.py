"""Three named citizens to log in as, registered and consenting through the broker's own services.

Unlike the bulk population, these go through ``CitizenService``, ``AccountService`` and ``ConsentLedger``
one call at a time, with the ledger's clock set back to each decision's date, so their histories are
exactly what the portal would have written. Which purposes they answer is read from the policy:

* Camille gives every consent purpose (special categories with explicit confirmation);
* Hugo gives one purpose, gave a second and withdrew it, refused a third;
* Emma reads English; she gives one purpose and refuses the special-category one.

Camille is also the guardian of Léo, 12, whom the city's registry links to her: he has no portal account
(too young), and Camille has agreed to one purpose for him, so her dashboard shows the guardian's pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
from sqlmodel import Session

from broker.audit import actions
from broker.consent.ledger import ConsentLedger
from broker.consent.states import ConsentState
from broker.demo.consents import consent_purposes
from broker.demo.credentials import DemoLogin
from broker.demo.population import CitizenBatch, uuid4_strings
from broker.demo.timestamps import ages_on, to_us
from broker.identity.accounts import AccountService, Role
from broker.identity.citizens import CitizenService
from broker.identity.guardianship import Basis, Guardianships
from broker.identity.models import Citizen
from broker.keys import Secrets
from broker.policy.schema import Policy, Purpose
from broker.timeutil import FixedClock


@dataclass(frozen=True)
class NamedCitizen:
    local: str         # the part of the email address before @
    name: str
    password: str
    age: int
    district: str
    locale: str


NAMED = (
    NamedCitizen("camille", "Camille Martin", "lyon-demo-camille", 34, "lyon-3", "fr"),
    NamedCitizen("hugo", "Hugo Bernard", "lyon-demo-hugo", 52, "lyon-7", "fr"),
    NamedCitizen("emma", "Emma Walker", "lyon-demo-emma", 27, "lyon-1", "en"),
)


@dataclass(frozen=True)
class NamedWard:
    local: str         # the part of the registered email address before @; the ward has no account
    name: str
    age: int
    district: str
    locale: str
    guardian: str      # the ``local`` of the named citizen the registry links them to


NAMED_WARDS = (NamedWard("leo", "Léo Martin", 12, "lyon-3", "fr", guardian="camille"),)


def _script(who: str, policy: Policy) -> list[tuple[Purpose, int, ConsentState]]:
    """(purpose, days ago, state) decisions in the order they were made."""
    purposes = consent_purposes(policy)
    plain = [p for p in purposes if not p.special_category]
    special = [p for p in purposes if p.special_category]
    if who == "camille":
        return [(p, 200 - 7 * i, ConsentState.given) for i, p in enumerate(purposes)]
    if who == "hugo":
        steps = []
        if plain:
            steps.append((plain[0], 300, ConsentState.given))
        if len(plain) > 1:
            steps += [(plain[1], 150, ConsentState.given), (plain[1], 20, ConsentState.withdrawn)]
        if len(plain) > 2:
            steps.append((plain[2], 100, ConsentState.refused))
        return steps
    steps = [(plain[-1], 60, ConsentState.given)] if plain else []
    return steps + [(p, 45, ConsentState.refused) for p in special[:1]]


def _birth(today: date, age: int) -> date:
    return date(today.year - age, 4, 12) if (today.month, today.day) >= (4, 12) else date(today.year - age - 1, 4, 12)


def create_named(session: Session, policy: Policy, secrets: Secrets, *, now: datetime, domain: str,
                 rng: np.random.Generator, districts: list[str]) -> tuple[list[DemoLogin], CitizenBatch]:
    """Register the named citizens with accounts and consent histories; returns their logins, and a
    one-row-each batch describing them for the vault record generator."""
    citizens, accounts = CitizenService(session, secrets), AccountService(session, secrets)
    clock = FixedClock(now)
    ledger = ConsentLedger(session, policy, secrets, clock)
    ids = uuid4_strings(rng, len(NAMED))
    registered_at = now - timedelta(days=330)
    logins, births, homes, pseudonyms = [], [], [], []
    registered: dict[str, Citizen] = {}
    for person, cid in zip(NAMED, ids, strict=True):
        email = f"{person.local}@{domain}"
        district = person.district if person.district in districts else (districts[0] if districts else None)
        citizen = citizens.register(email=email, name=person.name, birth_date=_birth(now.date(), person.age),
                                    district=district, locale=person.locale, now=registered_at, citizen_id=cid)
        accounts.create(email=email, password=person.password, role=Role.citizen, now=registered_at,
                        citizen_id=citizen.id)
        for purpose, days_ago, state in _script(person.local, policy):
            days = min(days_ago, purpose.consent_validity_months * 28 - 2)
            clock.at = now - timedelta(days=days, hours=3, minutes=17 * len(logins))
            ledger.set_state(citizen, purpose.id, state, explicit=purpose.special_category,
                             language=person.locale)
        logins.append(DemoLogin(email=email, password=person.password, name=person.name))
        births.append(citizen.birth_date)
        homes.append(districts.index(district) if district in districts else 0)
        pseudonyms.append(citizen.pseudonym)
        registered[person.local] = citizen
    _create_wards(session, policy, secrets, ledger, clock, registered, ward_ids=uuid4_strings(rng, len(NAMED_WARDS)),
                  now=now, domain=domain, districts=districts)
    session.flush()
    birth = np.array(births, dtype="datetime64[D]")
    batch = CitizenBatch(
        ordinal=np.zeros(len(NAMED), dtype=np.int64), ids=ids, birth=birth, age=ages_on(birth, now.date()),
        district=np.array(homes), locale=np.array([p.locale for p in NAMED], dtype=object),
        first_name=np.zeros(len(NAMED), dtype=np.int64), last_name=np.zeros(len(NAMED), dtype=np.int64),
        registered_us=np.full(len(NAMED), to_us(registered_at)), privacy_cap=[None] * len(NAMED),
        engagement=np.ones(len(NAMED)), pseudonyms=np.array(pseudonyms, dtype=object),
    )
    return logins, batch


def _create_wards(session: Session, policy: Policy, secrets: Secrets, ledger: ConsentLedger, clock: FixedClock,
                  guardians: dict[str, Citizen], *, ward_ids: list[str], now: datetime, domain: str,
                  districts: list[str]) -> None:
    """The named minors, linked to their guardian through the service the CLI uses (so the link is audited),
    and the guardian's answers for them through the ledger."""
    citizens = CitizenService(session, secrets)
    plain = [p for p in consent_purposes(policy) if not p.special_category]
    for ward, cid in zip(NAMED_WARDS, ward_ids, strict=True):
        guardian = guardians[ward.guardian]
        district = ward.district if ward.district in districts else (districts[0] if districts else None)
        registered_at = now - timedelta(days=300)
        minor = citizens.register(email=f"{ward.local}@{domain}", name=ward.name,
                                  birth_date=_birth(now.date(), ward.age), district=district, locale=ward.locale,
                                  now=registered_at, citizen_id=cid)
        Guardianships(session).establish(guardian, minor, basis=Basis.registry, actor=actions.OPERATOR,
                                         now=registered_at)
        if plain:
            clock.at = now - timedelta(days=40, hours=5)
            ledger.set_state(minor, plain[0].id, ConsentState.given, language=ward.locale, guardian=guardian)


def named_consenting(session: Session, policy: Policy, secrets: Secrets, batch: CitizenBatch,
                     now: datetime) -> dict[str, np.ndarray]:
    """For each consent purpose, whether each named citizen's consent counts now."""
    ledger = ConsentLedger(session, policy, secrets, FixedClock(now))
    if batch.pseudonyms is None:
        raise ValueError("the named citizens' batch carries their pseudonyms")
    return {p.id: np.array([ledger.current(alias, p.id).counts for alias in batch.pseudonyms.tolist()])
            for p in consent_purposes(policy)}
