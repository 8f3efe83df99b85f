"""What a logged-in citizen sees and does about themselves: profile, consents, receipts, export, erasure.

Every method acts on the one citizen the service was built for, which the API takes from the portal session
and never from the request: there is no parameter through which another citizen could be named. Records are
looked up by id *and* the citizen's pseudonym, so another citizen's record id answers exactly like an
unknown one.
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
from broker.errors import NotFound
from broker.identity.citizens import CitizenService, Identifiers, age_on
from broker.identity.login import LoginConfig, PasswordLogin
from broker.identity.models import Citizen
from broker.identity.sessions import Principal, SessionStore
from broker.keys import KeyRing, Secrets
from broker.policy.schema import Policy
from broker.rights import erase_citizen, export_citizen
from broker.timeutil import Clock


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

    def profile(self) -> Profile:
        cap = self.citizen.privacy_cap
        return Profile(
            citizen=self.citizen,
            identifiers=self.citizens.identifiers(self.citizen),
            age_band=age_band(self.citizen.birth_date, self.clock.now().date()),
            privacy_cap=cap if cap is not None else self.policy.broker.citizen_privacy_cap,
            privacy_cap_is_default=cap is None,
        )

    def consents(self) -> list[ConsentStatus]:
        return self.ledger.overview(self.citizen)

    def set_consent(self, purpose_id: str, state: str, *, explicit: bool, language: str | None,
                    method: str = "api") -> SignedRecord:
        # "api": collected through the JSON API with the portal session (the portal's own forms say "portal").
        record = self.ledger.set_state(self.citizen, purpose_id, state, explicit=explicit, method=method,
                                       language=language)
        return self._signed(record)

    def receipt(self, record_id: str) -> SignedRecord:
        try:
            record = self.ledger.get_record(self.citizen, record_id)
        except NotFound:
            # A refusal is an action too: its entry is committed although the request ends in an error. The
            # id asked for is not logged (free input, and possibly another citizen's record).
            record_audit(self.session, AuditEvent(
                actor=actions.citizen(self.citizen.pseudonym), action=actions.AUTHORIZATION_FAILED,
                details={"resource": "consent-receipt", "reason": "not-found-or-not-own"}), self.clock.now())
            self.session.commit()
            raise
        return self._signed(record)

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
