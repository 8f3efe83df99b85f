"""What a logged-in citizen sees and does about themselves: profile, privacy cap, consents, receipts, export,
erasure, and the consents of the minors in their care.

Every method acts on the one citizen the service was built for, which the API takes from the portal session
and never from the request: there is no parameter through which another citizen could be named. Records are
looked up by id *and* the citizen's pseudonym, so another citizen's record id answers exactly like an
unknown one. A ward is reached only through one of this citizen's own guardianship links in force, by the
link's id: another guardian's link, an ended one and an unknown id all answer alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from broker.audit import AuditEvent, actions
from broker.audit import record as record_audit
from broker.consent.ledger import ConsentLedger
from broker.consent.models import ConsentRecord
from broker.consent.receipts import sign_receipt
from broker.consent.states import ConsentStatus
from broker.db import session_scope
from broker.errors import InvalidRequest, NotFound
from broker.identity.citizens import CitizenService, Identifiers, age_on
from broker.identity.guardianship import Guardianships, Ward
from broker.identity.login import LoginConfig, PasswordLogin
from broker.identity.models import Citizen
from broker.identity.sessions import Principal, SessionStore
from broker.keys import KeyRing, Secrets
from broker.policy.schema import Policy
from broker.privacy.epsilon import is_whole_micro
from broker.rights import erase_citizen, export_citizen
from broker.timeutil import Clock

# Below this a citizen's data would leave almost every statistic at once: withdrawing says that more plainly.
MIN_PRIVACY_CAP = 0.1


class PrivacyCapOutOfRange(InvalidRequest):
    code, title = "privacy-cap-out-of-range", "Privacy cap out of range"


def age_band(birth_date: date | None, today: date) -> str:
    """The bands that decide who may consent alone (Art 8: 15 in France; some purposes ask 18)."""
    if birth_date is None:
        return "unknown"
    age = age_on(birth_date, today)
    return "under-15" if age < 15 else "15-17" if age < 18 else "18-or-over"


@dataclass(frozen=True)
class Profile:
    citizen: Citizen
    identifiers: Identifiers
    age_band: str
    privacy_cap: float
    privacy_cap_is_default: bool


@dataclass(frozen=True)
class WardView:
    """A minor in this citizen's care: the link's id as the only reference, the name, no email."""

    ward_ref: str
    name: str
    age_band: str
    since: datetime
    consents: list[ConsentStatus]
    decides_alone: frozenset[str]  # purposes whose minimum age the ward has reached: the guardian has no say


@dataclass(frozen=True)
class SignedRecord:
    record: ConsentRecord
    receipt: str  # compact JWS, verifiable against /.well-known/jwks.json


class CitizenSelfService:
    def __init__(self, session: Session, policy: Policy, secrets: Secrets, clock: Clock, citizen_id: str) -> None:
        self.session = session
        self.policy = policy
        self.secrets = secrets
        self.clock = clock
        self.citizens = CitizenService(session, secrets)
        self.citizen = self.citizens.get(citizen_id)  # CitizenErased once erased
        self.ledger = ConsentLedger(session, policy, secrets, clock)
        self.guardianships = Guardianships(session)

    def profile(self) -> Profile:
        cap = self.citizen.privacy_cap
        return Profile(
            citizen=self.citizen,
            identifiers=self.citizens.identifiers(self.citizen),
            age_band=age_band(self.citizen.birth_date, self.clock.now().date()),
            privacy_cap=cap if cap is not None else self.policy.broker.citizen_privacy_cap,
            privacy_cap_is_default=cap is None,
        )

    def privacy_cap_bounds(self) -> tuple[float, float]:
        """The range a personal cap may take: a citizen may lower the city's default, never raise it."""
        return MIN_PRIVACY_CAP, self.policy.broker.citizen_privacy_cap

    def set_privacy_cap(self, cap: float | None) -> Profile:
        """Set this citizen's yearly ε cap, or go back to the policy's default with None; audited.

        Only the column is written: the cohort reads it at each query (:mod:`broker.privacy.caps`).
        """
        if cap is not None:
            low, high = self.privacy_cap_bounds()
            if not (low <= cap <= high) or not is_whole_micro(cap):
                raise PrivacyCapOutOfRange(f"a personal privacy cap is an ε per year from {low:g} to {high:g} "
                                           "(the city's default), in steps of at most 0.000001, or null for the "
                                           "default")
        previous = self.citizen.privacy_cap
        if previous != cap:
            self.citizen.privacy_cap = cap
            self.session.add(self.citizen)
            self.session.flush()
            record_audit(self.session, AuditEvent(
                actor=actions.citizen(self.citizen.pseudonym), action=actions.PRIVACY_CAP_CHANGED,
                subject=self.citizen.pseudonym, details={"privacy_cap": cap, "previous": previous}),
                self.clock.now())
        return self.profile()

    def consents(self) -> list[ConsentStatus]:
        return self.ledger.overview(self.citizen)

    # -- the minors in my care ------------------------------------------------------------------------------
    def wards(self) -> list[WardView]:
        return [self._ward_view(ward) for ward in self.guardianships.wards(self.citizen, self._today())]

    def ward(self, ward_ref: str) -> WardView:
        return self._ward_view(self.guardianships.ward(self.citizen, ward_ref, self._today()))

    def set_ward_consent(self, ward_ref: str, purpose_id: str, state: str, *, explicit: bool,
                         language: str | None, method: str = "api") -> SignedRecord:
        """Decide for a ward as their guardian; the ledger checks the link again, under the ward's row lock."""
        ward = self.guardianships.ward(self.citizen, ward_ref, self._today())
        record = self.ledger.set_state(ward.minor, purpose_id, state, explicit=explicit, method=method,
                                       language=language, guardian=self.citizen)
        return self._signed(record)

    def ward_records(self, ward_ref: str) -> list[ConsentRecord]:
        """The ward's consent records, newest first, whoever expressed them (the guardian or the child)."""
        ward = self.guardianships.ward(self.citizen, ward_ref, self._today())
        return list(reversed(self.ledger.history(ward.minor)))

    def ward_receipt(self, ward_ref: str, record_id: str) -> SignedRecord:
        """The signed receipt of one of the ward's records, while the link is in force; audited with the
        guardian as actor. An unknown or ended link and another citizen's record all answer the same 404."""
        try:
            ward = self.guardianships.ward(self.citizen, ward_ref, self._today())
        except NotFound:
            self._refuse_receipt()
            raise
        return self._receipt_of(ward.minor, record_id)

    def _ward_view(self, ward: Ward) -> WardView:
        today = self._today()
        age = age_on(ward.minor.birth_date, today) if ward.minor.birth_date else 0  # a ward's is always known
        return WardView(ward_ref=ward.link.id, name=self.citizens.identifiers(ward.minor).name,
                        age_band=age_band(ward.minor.birth_date, today), since=ward.link.since,
                        consents=self.ledger.overview(ward.minor),
                        decides_alone=frozenset(p.id for p in self.policy.purposes
                                                if p.takes_consent and age >= self.policy.minimum_age(p)))

    def _today(self) -> date:
        return self.clock.now().date()

    def set_consent(self, purpose_id: str, state: str, *, explicit: bool, language: str | None,
                    method: str = "api") -> SignedRecord:
        # "api": collected through the JSON API with the portal session (the portal's own forms say "portal").
        record = self.ledger.set_state(self.citizen, purpose_id, state, explicit=explicit, method=method,
                                       language=language)
        return self._signed(record)

    def receipt(self, record_id: str) -> SignedRecord:
        return self._receipt_of(self.citizen, record_id)

    def _receipt_of(self, owner: Citizen, record_id: str) -> SignedRecord:
        """The signed receipt of ``owner``'s record ``record_id``: this citizen's own, or a ward's."""
        try:
            record = self.ledger.get_record(owner, record_id)
        except NotFound:
            self._refuse_receipt()
            raise
        return self._signed(record)

    def _refuse_receipt(self) -> None:
        # A refusal is an action too: its entry is committed although the request ends in an error. The ids
        # asked for are not logged (free input, and possibly another citizen's record or link).
        record_audit(self.session, AuditEvent(
            actor=actions.citizen(self.citizen.pseudonym), action=actions.AUTHORIZATION_FAILED,
            details={"resource": "consent-receipt", "reason": "not-found-or-not-own"}), self.clock.now())
        self.session.commit()

    def export(self) -> dict[str, Any]:
        return export_citizen(self.session, self.policy, self.secrets, self.citizen, self.clock.now())

    def _signed(self, record: ConsentRecord) -> SignedRecord:
        # Loaded through this session: a second connection would wait on SQLite's write lock held by this one.
        keyring = KeyRing.load(self.session, self.secrets)
        signed = SignedRecord(record=record, receipt=sign_receipt(keyring, self.ledger.receipt(record)))
        record_audit(self.session, AuditEvent(
            actor=actions.citizen(self.citizen.pseudonym), action=actions.RECEIPT_ISSUED, purpose=record.purpose_id,
            subject=record.pseudonym,
            details={"record_id": record.id, "evidence": record.evidence, "kid": keyring.current_kid}),
            self.clock.now())
        return signed


class SelfErasure:
    """Art 17 erasure asked by the citizen, after proving again that they hold the account."""

    def __init__(self, engine: Engine, policy: Policy, secrets: Secrets, clock: Clock, config: LoginConfig) -> None:
        self.engine = engine
        self.policy = policy
        self.secrets = secrets
        self.clock = clock
        self.config = config

    def erase(self, principal: Principal, password: str | None, *, address: str | None) -> dict[str, int]:
        PasswordLogin(self.engine, self.secrets, self.clock, self.config).confirm(principal, password,
                                                                                 address=address)
        now: datetime = self.clock.now()
        with session_scope(self.engine) as session:
            citizen = CitizenService(session, self.secrets).get(principal.citizen_id or "")
            SessionStore(session, self.clock, self.config.timeouts).revoke_all(principal.account_id)
            # erase_citizen deletes the account; its sessions and provider link go with it (ON DELETE CASCADE).
            return erase_citizen(session, self.policy, citizen, now)
