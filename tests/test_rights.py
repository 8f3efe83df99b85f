"""Art 15/20 export and Art 17 erasure, on both databases."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from cryptography.exceptions import InvalidTag
from sqlalchemy import Engine, func, insert, select

from broker.consent.ledger import ConsentLedger
from broker.db import session_scope
from broker.identity.accounts import AccountService, Role
from broker.identity.citizens import CitizenErased, CitizenService
from broker.identity.models import Account, Citizen
from broker.keys import Secrets
from broker.policy import Policy
from broker.policy.schema import FieldType
from broker.rights import erase_citizen, export_citizen
from broker.timeutil import FixedClock
from broker.vault.tables import vault_metadata


def _sample_row(dataset, pseudonym: str, clock: FixedClock, policy: Policy, n: int) -> dict:
    row: dict = {"pseudonym": pseudonym, "batch_id": "b1"}
    for field in dataset.fields:
        if field.type is FieldType.timestamp:
            row[field.name] = clock.now() - timedelta(days=n)
        elif field.type is FieldType.category:
            row[field.name] = (field.categories or policy.broker.domains[field.domain])[0]
        else:
            row[field.name] = field.to_fixed(field.lower)
    return row


@pytest.fixture
def camille(engine: Engine, secrets: Secrets, clock: FixedClock, policy: Policy) -> str:
    """A citizen with an account, a consent history and two records in every dataset."""
    with session_scope(engine) as session:
        citizen = CitizenService(session, secrets).register(
            email="camille@lyon.example", name="Camille Martin", birth_date=date(1985, 1, 2),
            district=policy.broker.domains["districts"][0], locale="fr", now=clock.now())
        AccountService(session, secrets).create(email="camille@lyon.example", password="pw-camille-1",
                                                role=Role.citizen, citizen_id=citizen.id, now=clock.now())
        purpose = next(p for p in policy.purposes if p.takes_consent and not p.special_category)
        ledger = ConsentLedger(session, policy, secrets, clock)
        ledger.set_state(citizen, purpose.id, "given")
        ledger.set_state(citizen, purpose.id, "withdrawn")
        _, tables = vault_metadata(policy)
        for dataset in policy.datasets:
            session.connection().execute(insert(tables[dataset.id]), [
                _sample_row(dataset, citizen.pseudonym, clock, policy, n) for n in (1, 2)])
        # Someone else's data must neither be exported nor erased with Camille's.
        other = CitizenService(session, secrets).register(
            email="other@lyon.example", name="Other", birth_date=None, district=None, locale="en",
            now=clock.now())
        session.connection().execute(insert(tables[policy.datasets[0].id]),
                                     [_sample_row(policy.datasets[0], other.pseudonym, clock, policy, 1)])
        return citizen.id


def test_export_holds_everything_about_the_citizen(engine: Engine, secrets: Secrets, clock: FixedClock,
                                                   policy: Policy, camille: str) -> None:
    with session_scope(engine) as session:
        citizen = CitizenService(session, secrets).get(camille)
        document = export_citizen(session, policy, secrets, citizen, clock.now())
    json.dumps(document)  # one JSON document
    assert document["citizen"]["email"] == "camille@lyon.example"
    assert document["citizen"]["name"] == "Camille Martin"
    assert document["citizen"]["birth_date"] == "1985-01-02"
    assert document["account"]["role"] == "citizen"
    assert [r["state"] for r in document["consent_records"]] == ["given", "withdrawn"]
    assert document["consent_records"][1]["previous_id"] == document["consent_records"][0]["id"]
    assert set(document["notices"]) == {r["notice_id"] for r in document["consent_records"]}
    assert set(document["records"]) == {d.id for d in policy.datasets}
    for dataset in policy.datasets:
        assert len(document["records"][dataset.id]) == 2
        numeric = [f for f in dataset.fields if f.type in (FieldType.integer, FieldType.decimal)]
        for field in numeric:
            assert document["records"][dataset.id][0][field.name] == field.lower
    assert "password" not in json.dumps(document["account"])


def test_erasure_shreds_identifiers_deletes_records_and_keeps_consent_proof(
        engine: Engine, secrets: Secrets, clock: FixedClock, policy: Policy, camille: str) -> None:
    with session_scope(engine) as session:
        citizen = CitizenService(session, secrets).get(camille)
        sealed_email = citizen.email_ct
        deleted = erase_citizen(session, policy, citizen, clock.now())
    assert deleted == {d.id: 2 for d in policy.datasets}

    with session_scope(engine) as session:
        citizen = session.get(Citizen, camille)
        assert citizen.erased_at is not None and citizen.wrapped_key is None
        assert citizen.email_index is None and citizen.birth_date is None
        with pytest.raises(CitizenErased):
            CitizenService(session, secrets).identifiers(citizen)
        with pytest.raises(CitizenErased):
            CitizenService(session, secrets).get(camille)
        # Even with the master key, no other key opens the old ciphertext: it is shredded.
        with pytest.raises(InvalidTag):
            secrets.open(sealed_email, aad=f"{camille}:email".encode())
        assert session.exec(select(Account).where(Account.citizen_id == camille)).first() is None
        assert AccountService(session, secrets).authenticate("camille@lyon.example", "pw-camille-1") is None

        _, tables = vault_metadata(policy)
        for dataset in policy.datasets:
            table = tables[dataset.id]
            mine = session.connection().execute(
                select(func.count()).select_from(table).where(table.c.pseudonym == citizen.pseudonym)).scalar()
            assert mine == 0
        first = tables[policy.datasets[0].id]
        assert session.connection().execute(select(func.count()).select_from(first)).scalar() == 1

        history = ConsentLedger(session, policy, secrets, clock).history(citizen)
        assert [r.state for r in history] == ["given", "withdrawn"]
        assert all(r.pseudonym == citizen.pseudonym for r in history)
