"""Portal accounts (citizens, auditors, admins) with argon2id passwords."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlmodel import Session, select

from broker.errors import Conflict
from broker.identity.models import Account
from broker.identity.passwords import hash_password, verify_password
from broker.keys import Secrets


class Role(StrEnum):
    citizen = "citizen"
    auditor = "auditor"
    admin = "admin"


class AccountService:
    def __init__(self, session: Session, secrets: Secrets) -> None:
        self.session = session
        self.secrets = secrets

    def create(self, *, email: str, password: str | None, role: Role, now: datetime,
               citizen_id: str | None = None) -> Account:
        index = self.secrets.email_index(email)
        if self.session.exec(select(Account).where(Account.email_index == index)).first():
            raise Conflict("an account with this email address already exists")
        if role is Role.citizen and citizen_id is None:
            raise ValueError("a citizen account belongs to a citizen")
        account = Account(id=str(uuid.uuid4()), email_index=index, role=role.value, citizen_id=citizen_id,
                          password_hash=hash_password(password) if password else None, created_at=now)
        self.session.add(account)
        self.session.flush()
        return account

    def authenticate(self, email: str, password: str) -> Account | None:
        account = self.session.exec(
            select(Account).where(Account.email_index == self.secrets.email_index(email))
        ).first()
        ok = verify_password(account.password_hash if account else None, password)
        if account is None or not ok or account.disabled_at is not None:
            return None
        return account
