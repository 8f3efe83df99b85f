"""Citizens: encrypted identifiers, blind email index, restriction."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import Engine, text

from broker.db import session_scope
from broker.errors import Conflict
from broker.identity.accounts import AccountService, Role
from broker.identity.citizens import CitizenService, age_on
from broker.keys import Secrets
from broker.timeutil import FixedClock


def test_identifiers_are_stored_only_encrypted(engine: Engine, secrets: Secrets, clock: FixedClock) -> None:
    with session_scope(engine) as session:
        citizen = CitizenService(session, secrets).register(
            email="camille.durand@lyon.example", name="Camille Durand", birth_date=date(1990, 5, 17),
            district="lyon-3", locale="fr", now=clock.now())
        cid = citizen.id
    with engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM citizen WHERE id = :id"), {"id": cid}).mappings().one()
    dump = repr(dict(row)).lower()
    assert "camille" not in dump and "durand" not in dump
    with session_scope(engine) as session:
        service = CitizenService(session, secrets)
        ids = service.identifiers(service.get(cid))
        assert (ids.email, ids.name) == ("camille.durand@lyon.example", "Camille Durand")
        assert service.by_email("Camille.Durand@lyon.example").id == cid
        assert service.get(cid).pseudonym == secrets.pseudonym(cid)


def test_an_email_registers_once(engine: Engine, secrets: Secrets, clock: FixedClock) -> None:
    with session_scope(engine) as session:
        service = CitizenService(session, secrets)
        service.register(email="a@lyon.example", name="A", birth_date=None, district=None, locale="fr",
                         now=clock.now())
        with pytest.raises(Conflict):
            service.register(email="A@lyon.example", name="B", birth_date=None, district=None, locale="fr",
                             now=clock.now())


def test_accounts_authenticate_with_argon2(engine: Engine, secrets: Secrets, clock: FixedClock) -> None:
    with session_scope(engine) as session:
        account = AccountService(session, secrets).create(email="dpo@lyon.example", password="correct horse",
                                                          role=Role.auditor, now=clock.now())
        assert account.password_hash.startswith("$argon2id$")
    with session_scope(engine) as session:
        accounts = AccountService(session, secrets)
        assert accounts.authenticate("DPO@lyon.example", "correct horse").role == "auditor"
        assert accounts.authenticate("dpo@lyon.example", "wrong") is None
        assert accounts.authenticate("nobody@lyon.example", "correct horse") is None


@pytest.mark.parametrize(("born", "on", "age"), [
    (date(2010, 3, 2), date(2026, 3, 2), 16),
    (date(2010, 3, 3), date(2026, 3, 2), 15),
    (date(2008, 2, 29), date(2026, 2, 28), 17),
])
def test_age_counts_whole_years(born: date, on: date, age: int) -> None:
    assert age_on(born, on) == age
