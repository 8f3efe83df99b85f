"""Citizens: registration, their encrypted identifiers, restriction of processing (Art 18).

Identifiers are sealed under the citizen's own data key with AES-GCM; the associated data binds each
ciphertext to the citizen and the field, so a ciphertext copied onto another row or field will not open.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime

from sqlmodel import Session, select

from broker.errors import Conflict, NotFound
from broker.identity.models import Account, Citizen
from broker.keys import Secrets


class CitizenErased(NotFound):
    code = "citizen-erased"
    title = "Citizen erased"


@dataclass(frozen=True)
class Identifiers:
    email: str
    name: str


def age_on(birth_date: date, day: date) -> int:
    return day.year - birth_date.year - ((day.month, day.day) < (birth_date.month, birth_date.day))


class CitizenService:
    def __init__(self, session: Session, secrets: Secrets) -> None:
        self.session = session
        self.secrets = secrets

    def register(self, *, email: str, name: str, birth_date: date | None, district: str | None,
                 locale: str, now: datetime, citizen_id: str | None = None) -> Citizen:
        email_index = self.secrets.email_index(email)
        if self.session.exec(select(Citizen).where(Citizen.email_index == email_index)).first():
            raise Conflict("a citizen with this email address is already registered")
        cid = citizen_id or str(uuid.uuid4())
        data_key, wrapped = self.secrets.new_wrapped_data_key()
        citizen = Citizen(
            id=cid,
            pseudonym=self.secrets.pseudonym(cid),
            email_index=email_index,
            email_ct=self.secrets.seal(email.encode(), aad=f"{cid}:email".encode(), key=data_key),
            name_ct=self.secrets.seal(name.encode(), aad=f"{cid}:name".encode(), key=data_key),
            wrapped_key=wrapped,
            birth_date=birth_date,
            district=district,
            locale=locale,
            created_at=now,
        )
        self.session.add(citizen)
        self.session.flush()
        return citizen

    def get(self, citizen_id: str) -> Citizen:
        citizen = self.session.get(Citizen, citizen_id)
        if citizen is None:
            raise NotFound("no such citizen")
        if citizen.erased_at is not None:
            raise CitizenErased("this citizen's data has been erased")
        return citizen

    def by_pseudonym(self, pseudonym: str) -> Citizen:
        citizen = self.session.exec(select(Citizen).where(Citizen.pseudonym == pseudonym)).first()
        if citizen is None:
            raise NotFound("no such citizen")
        return citizen

    def by_email(self, email: str) -> Citizen | None:
        index = self.secrets.email_index(email)
        return self.session.exec(select(Citizen).where(Citizen.email_index == index)).first()

    def identifiers(self, citizen: Citizen) -> Identifiers:
        """Decrypt the citizen's identifiers; fails once the data key has been destroyed (erasure)."""
        if citizen.wrapped_key is None or citizen.email_ct is None or citizen.name_ct is None:
            raise CitizenErased("this citizen's identifiers have been erased")
        key = self.secrets.unwrap(citizen.wrapped_key)
        return Identifiers(
            email=self.secrets.open(citizen.email_ct, aad=f"{citizen.id}:email".encode(), key=key).decode(),
            name=self.secrets.open(citizen.name_ct, aad=f"{citizen.id}:name".encode(), key=key).decode(),
        )

    def restrict(self, citizen: Citizen, now: datetime) -> None:
        """Art 18: the data is kept but no longer used in any release until the restriction is lifted."""
        citizen.restricted_at = citizen.restricted_at or now
        self.session.add(citizen)
        self.session.flush()

    def lift_restriction(self, citizen: Citizen) -> None:
        citizen.restricted_at = None
        self.session.add(citizen)
        self.session.flush()

    def account_for(self, citizen: Citizen) -> Account | None:
        return self.session.exec(select(Account).where(Account.citizen_id == citizen.id)).first()
