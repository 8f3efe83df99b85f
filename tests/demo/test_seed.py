"""The seeded demo city, on SQLite and PostgreSQL: plausible counts, readable identifiers, a consent ledger
the broker's own rules would have written, vault records inside their declarations, seeding once."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlmodel import select

from broker.consent.ledger import ConsentLedger, add_months
from broker.consent.models import ConsentRecord, Notice
from broker.consent.receipts import evidence_of, receipt_payload
from broker.db import session_scope
from broker.demo import DemoIncomplete, seed_demo
from broker.demo.credentials import demo_domain
from broker.demo.named import NAMED, NAMED_WARDS
from broker.identity.citizens import CitizenService, age_on
from broker.identity.guardianship import Guardianships
from broker.identity.models import Account, Citizen, Guardianship
from broker.policy.schema import FieldType
from broker.timeutil import as_utc
from broker.vault.tables import table_name, vault_metadata
from tests.demo.conftest import CHUNK, CITIZENS, Seeded


def _count(seeded: Seeded, table: str) -> int:
    with seeded.engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


def test_counts_are_plausible(seeded: Seeded) -> None:
    policy = seeded.runtime.policy
    consent_purposes = [p for p in policy.purposes if p.takes_consent and p.status == "active"]
    assert _count(seeded, "citizen") == CITIZENS + len(NAMED) + len(NAMED_WARDS)
    assert _count(seeded, "account") == len(NAMED) + 2
    assert _count(seeded, "oauth_client") == len(policy.services)
    assert _count(seeded, "notice") == len(consent_purposes)
    records = sum(_count(seeded, table_name(d.id)) for d in policy.datasets)
    assert 6 * CITIZENS <= records <= 14 * CITIZENS
    assert all(_count(seeded, table_name(d.id)) > 0 for d in policy.datasets)

    with session_scope(seeded.engine) as session:
        ledger = ConsentLedger(session, policy, seeded.runtime.secrets, seeded.runtime.clock)
        citizens = session.exec(select(Citizen)).all()
        rates = {p.id: sum(ledger.current(c, p.id).counts for c in citizens) / len(citizens)
                 for p in consent_purposes}
    plain = [rates[p.id] for p in consent_purposes if not p.special_category]
    special = [rates[p.id] for p in consent_purposes if p.special_category]
    assert all(0.2 <= r <= 0.75 for r in plain), rates
    assert all(0.05 <= r < min(plain) for r in special), rates


def test_every_citizen_s_identifiers_decrypt(seeded: Seeded) -> None:
    secrets = seeded.runtime.secrets
    domain = demo_domain(seeded.runtime.policy)
    named = {f"{n.local}@{domain}" for n in NAMED}
    with session_scope(seeded.engine) as session:
        service = CitizenService(session, secrets)
        citizens = session.exec(select(Citizen)).all()
        emails = set()
        for citizen in citizens:
            identifiers = service.identifiers(citizen)
            emails.add(identifiers.email)
            assert identifiers.name.strip()
            assert citizen.pseudonym == secrets.pseudonym(citizen.id)
            assert citizen.email_index == secrets.email_index(identifiers.email)
            assert citizen.locale in ("fr", "en")
        assert service.by_email(f"citizen-17@{domain}") is not None
    wards = {f"{w.local}@{domain}" for w in NAMED_WARDS}
    assert emails == named | wards | {f"citizen-{n}@{domain}" for n in range(1, CITIZENS + 1)}


def test_consent_records_are_ones_the_ledger_would_write(seeded: Seeded) -> None:
    policy, now = seeded.runtime.policy, seeded.runtime.clock.now()
    with session_scope(seeded.engine) as session:
        records = session.exec(select(ConsentRecord).order_by(ConsentRecord.seq)).all()
        notices = {n.id: n for n in session.exec(select(Notice)).all()}
        citizens = {c.pseudonym: c for c in session.exec(select(Citizen)).all()}
        links = {(g.guardian_id, g.minor_id): g for g in session.exec(select(Guardianship)).all()}
    by_id = {r.id: r for r in records}
    guardians = 0
    for record in records:
        purpose = policy.purpose(record.purpose_id)
        assert purpose is not None and purpose.takes_consent and purpose.status == "active"
        assert record.notice_id == f"{purpose.id}@{purpose.version}" == notices[record.notice_id].id
        assert record.evidence == evidence_of(receipt_payload(record, notices[record.notice_id]))
        assert record.consent_type == ("explicit" if purpose.special_category else "expressed")
        assert as_utc(record.created_at) <= now and record.valid_from == record.created_at
        subject = citizens[record.pseudonym]
        age = age_on(subject.birth_date, as_utc(record.valid_from).date())
        if policy.minimum_age(purpose) >= 18:
            assert age >= 18, "an adults-only purpose answered by a minor"
        if record.state == "given":
            assert as_utc(record.valid_until) == add_months(as_utc(record.valid_from),
                                                              purpose.consent_validity_months)
            assert as_utc(record.valid_until) > now
        else:
            assert record.valid_until is None
        if record.state == "given" and age < policy.minimum_age(purpose):
            guardians += 1
            guardian = citizens[record.guardian_pseudonym]
            assert (record.method, record.expressed_by) == ("guardian", "guardian")
            assert age_on(guardian.birth_date, as_utc(record.valid_from).date()) >= 18
            link = links[(guardian.id, subject.id)]  # the ledger accepts a guardian only through a link
            assert link.ended_at is None and as_utc(link.since) <= as_utc(record.valid_from)
        else:
            assert record.expressed_by == "self" and record.guardian_pseudonym is None
            assert record.method in ("portal", "api")
        if record.state == "withdrawn":
            first = by_id[record.previous_id]
            assert (first.state, first.pseudonym, first.purpose_id) == ("given", record.pseudonym, record.purpose_id)
            assert first.seq < record.seq and as_utc(first.created_at) < as_utc(record.created_at)
        else:
            assert record.previous_id is None or record.pseudonym in _named_pseudonyms(seeded)
    assert guardians > 0, "no minor's consent in the sample: pick another seed for the fixture"
    states = Counter(r.state for r in records)
    assert states["given"] > states["refused"] > 0 and states["withdrawn"] > 0


def _named_pseudonyms(seeded: Seeded) -> set[str]:
    domain = demo_domain(seeded.runtime.policy)
    with session_scope(seeded.engine) as session:
        service = CitizenService(session, seeded.runtime.secrets)
        return {service.by_email(f"{n.local}@{domain}").pseudonym for n in NAMED}


def test_vault_records_stay_inside_their_declarations(seeded: Seeded) -> None:
    policy, now = seeded.runtime.policy, seeded.runtime.clock.now()
    with session_scope(seeded.engine) as session:
        homes = {c.pseudonym: c.district for c in session.exec(select(Citizen)).all()}
    _, tables = vault_metadata(policy)
    for dataset in policy.datasets:
        with seeded.engine.connect() as conn:
            rows = conn.execute(select(tables[dataset.id])).mappings().all()
        for dataset_field in dataset.fields:
            values = [row[dataset_field.name] for row in rows]
            if dataset_field.type in (FieldType.integer, FieldType.decimal):
                low, high = dataset_field.to_fixed(dataset_field.lower), dataset_field.to_fixed(dataset_field.upper)
                assert all(isinstance(v, int) and low <= v <= high for v in values), dataset_field.name
                assert len(set(values)) >= min(10, len(values)), f"{dataset_field.name} barely varies"
            elif dataset_field.type is FieldType.category:
                allowed = dataset_field.categories or policy.broker.domains[dataset_field.domain]
                assert set(values) <= set(allowed), dataset_field.name
            else:
                assert all(now - timedelta(days=91) <= as_utc(v) <= now for v in values), dataset_field.name
        assert {row["pseudonym"] for row in rows} <= set(homes)
        if dataset.field("district") is not None:
            assert all(row["district"] == homes[row["pseudonym"]] for row in rows)


def test_seeding_twice_changes_nothing(seeded: Seeded) -> None:
    tables = ["citizen", "consent_record", "account", "oauth_client",
              *(table_name(d.id) for d in seeded.runtime.policy.datasets)]
    before = {t: _count(seeded, t) for t in tables}
    again = seed_demo(seeded.runtime, citizens=CITIZENS, seed=7, chunk_size=CHUNK)
    assert {t: _count(seeded, t) for t in tables} == before
    assert again.to_json() == seeded.credentials.to_json()


def test_an_unfinished_seed_is_reported_not_repeated(seeded: Seeded) -> None:
    domain = demo_domain(seeded.runtime.policy)
    with session_scope(seeded.engine) as session:
        admin = session.exec(select(Account).where(
            Account.email_index == seeded.runtime.secrets.email_index(f"admin@{domain}"))).one()
        session.delete(admin)
    with pytest.raises(DemoIncomplete):
        seed_demo(seeded.runtime, citizens=CITIZENS, seed=7, chunk_size=CHUNK)


def test_every_minor_with_a_guardian_is_linked_and_camille_cares_for_leo(seeded: Seeded) -> None:
    today = seeded.runtime.clock.now().date()
    domain = demo_domain(seeded.runtime.policy)
    with session_scope(seeded.engine) as session:
        citizens = {c.id: c for c in session.exec(select(Citizen)).all()}
        links = session.exec(select(Guardianship)).all()
        service = CitizenService(session, seeded.runtime.secrets)
        camille, leo = service.by_email(f"camille@{domain}"), service.by_email(f"leo@{domain}")
        wards = Guardianships(session).wards(camille, today)
        assert [w.minor.id for w in wards] == [leo.id]
        assert ConsentLedger(session, seeded.runtime.policy, seeded.runtime.secrets,
                             seeded.runtime.clock).history(leo)[0].guardian_pseudonym == camille.pseudonym
    assert len(links) > len(NAMED_WARDS)
    for link in links:
        guardian, minor = citizens[link.guardian_id], citizens[link.minor_id]
        assert age_on(guardian.birth_date, today) >= 18 and age_on(minor.birth_date, today) < 18
        assert (link.basis, link.established_by, link.ended_at) == ("registry", "operator", None)
    assert len({(link.guardian_id, link.minor_id) for link in links}) == len(links)
