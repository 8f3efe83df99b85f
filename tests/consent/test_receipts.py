"""Signed consent receipts and the notices they point to."""

from __future__ import annotations

import json
import threading
import time

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from broker.consent.ledger import ConsentLedger
from broker.consent.models import ConsentRecord, Notice
from broker.consent.notices import NoticeChanged, ensure_notice, notice_body
from broker.consent.receipts import RECEIPT_TYP, evidence_of, receipt_payload, sign_receipt, verify_receipt
from broker.db import session_scope
from broker.identity.models import Citizen
from broker.keys import KeyRing, Secrets, SignatureInvalid, b64u, canonical_json, create_signing_key, sha256_hex, unb64u
from broker.policy import Policy
from broker.timeutil import FixedClock
from tests.consent.conftest import make_citizen, plain_purpose, special_purpose, with_purpose


def test_a_receipt_verifies_offline_against_the_jwks(ledger: ConsentLedger, keyring: KeyRing, policy: Policy,
                                                     adult: Citizen) -> None:
    record = ledger.set_state(adult, special_purpose(policy).id, "given", explicit=True)
    payload = ledger.receipt(record)
    token = sign_receipt(keyring, payload)
    jwks = json.loads(json.dumps(keyring.jwks()))  # as a verifier would fetch it
    assert verify_receipt(token, jwks) == payload
    header = json.loads(unb64u(token.split(".")[0]))
    assert header == {"alg": "ES256", "kid": keyring.current_kid, "typ": RECEIPT_TYP}


def test_the_receipt_holds_the_iso_27560_fields(ledger: ConsentLedger, policy: Policy, adult: Citizen,
                                                session: Session) -> None:
    purpose = special_purpose(policy)
    first = ledger.set_state(adult, purpose.id, "given", explicit=True)
    record = ledger.set_state(adult, purpose.id, "withdrawn")
    payload = ledger.receipt(record)
    notice = session.get(Notice, record.notice_id)
    assert payload["record_id"] == record.id and payload["previous_record_id"] == first.id
    assert payload["notice"] == {"id": f"{purpose.id}@{purpose.version}", "version": purpose.version,
                                 "sha256": notice.sha256}
    assert payload["subject"] == {"pseudonym": adult.pseudonym, "expressed_by": "self", "guardian_pseudonym": None}
    assert payload["controller"]["name"] == policy.broker.controller.name
    assert payload["jurisdiction"] == policy.broker.jurisdiction
    assert payload["legal_basis"] == purpose.legal_basis
    assert payload["special_category"] is True
    assert payload["purpose"]["title"] == purpose.title.fr
    assert payload["recipients"] == list(purpose.recipients)
    assert payload["retention_months"] == purpose.retention_months
    assert payload["withdrawal_method"] == purpose.withdrawal.fr
    assert payload["state"] == "withdrawn"
    assert {c["dataset"] for c in payload["data_categories"]} == set(purpose.dataset_ids)
    assert payload["timestamps"]["recorded"].endswith("Z")
    assert ledger.receipt(first)["consent_type"] == "explicit"


def test_a_tampered_receipt_fails(ledger: ConsentLedger, keyring: KeyRing, policy: Policy, adult: Citizen) -> None:
    token = sign_receipt(keyring, ledger.receipt(ledger.set_state(adult, plain_purpose(policy).id, "given")))
    header, body, signature = token.split(".")
    forged = json.loads(unb64u(body))
    forged["state"] = "withdrawn"
    for bad in (f"{header}.{b64u(canonical_json(forged))}.{signature}",
                f"{header}.{body[:-2]}{'A' if body[-2] != 'A' else 'B'}{body[-1]}.{signature}",
                f"{header}.{body}.{signature[::-1]}"):
        with pytest.raises(SignatureInvalid):
            verify_receipt(bad, keyring.jwks())


def test_a_receipt_signed_with_a_foreign_key_fails(session: Session, ledger: ConsentLedger, keyring: KeyRing,
                                                   policy: Policy, secrets: Secrets, clock: FixedClock,
                                                   adult: Citizen) -> None:
    payload = ledger.receipt(ledger.set_state(adult, plain_purpose(policy).id, "given"))
    savepoint = session.begin_nested()  # a key that never reaches the published JWKS
    foreign = KeyRing([create_signing_key(session, secrets, clock.now())], secrets)
    savepoint.rollback()
    assert foreign.current_kid not in {k["kid"] for k in keyring.jwks()["keys"]}
    with pytest.raises(SignatureInvalid):
        verify_receipt(sign_receipt(foreign, payload), keyring.jwks())


def test_a_checkpoint_style_token_is_not_a_receipt(ledger: ConsentLedger, keyring: KeyRing, policy: Policy,
                                                   adult: Citizen) -> None:
    payload = ledger.receipt(ledger.set_state(adult, plain_purpose(policy).id, "given"))
    with pytest.raises(SignatureInvalid):
        verify_receipt(keyring.sign(payload), keyring.jwks())


def test_evidence_is_the_hash_of_the_receipt_as_stored(engine: Engine, policy: Policy, secrets: Secrets,
                                                       clock: FixedClock) -> None:
    clock.advance(microseconds=123456)  # sub-second times must survive the round trip on both databases
    with session_scope(engine) as session:
        citizen = make_citizen(session, secrets, clock)
        ledger = ConsentLedger(session, policy, secrets, clock)
        ledger.set_state(citizen, plain_purpose(policy).id, "given")
        ledger.set_state(citizen, special_purpose(policy).id, "given", explicit=True)
        ledger.set_state(citizen, plain_purpose(policy).id, "withdrawn")
        written = {r.id: receipt_payload(r, session.get(Notice, r.notice_id)) for r in ledger.history(citizen)}
    with session_scope(engine) as session:
        records = session.exec(select(ConsentRecord)).all()
        assert len(records) == 3
        for record in records:
            payload = receipt_payload(record, session.get(Notice, record.notice_id))
            assert payload == written[record.id]
            assert record.evidence == evidence_of(payload) == sha256_hex(canonical_json(payload))


def test_receipt_payload_needs_no_session(policy: Policy, clock: FixedClock) -> None:
    purpose = plain_purpose(policy)
    body = canonical_json(notice_body(policy, purpose))
    notice = Notice(id=f"{purpose.id}@{purpose.version}", purpose_id=purpose.id, purpose_version=purpose.version,
                    sha256=sha256_hex(body), body=body.decode(), created_at=clock.now())
    record = ConsentRecord(id="c0ffee00-0000-4000-8000-000000000000", schema_version="27560-1", pseudonym="a" * 64,
                           purpose_id=purpose.id, purpose_version=purpose.version, state="given",
                           created_at=clock.now(), valid_from=clock.now(), valid_until=None, method="api",
                           expressed_by="self", consent_type="expressed", notice_id=notice.id, language="en",
                           jurisdiction="FR", evidence="")
    assert receipt_payload(record, notice) == receipt_payload(record, notice)
    assert receipt_payload(record, notice)["purpose"]["title"] == purpose.title.en


def test_notice_body_tells_what_article_13_asks(policy: Policy) -> None:
    purpose = special_purpose(policy)
    body = notice_body(policy, purpose)
    assert body["controller"]["name"] == policy.broker.controller.name
    assert body["controller"]["department"] == purpose.controller
    assert body["purpose"]["title"] == purpose.title.model_dump()
    assert body["purpose"]["description"] == purpose.description.model_dump()
    assert body["legal_basis"]["code"] == purpose.legal_basis
    assert body["special_category"] is True and body["minimum_age"] == policy.minimum_age(purpose)
    for use, category in zip(purpose.datasets, body["data_categories"], strict=True):
        assert category["dataset"] == use.dataset
        assert {f["name"] for f in category["fields"]} == {*use.fields, *use.group_by}
    assert body["recipients"] == list(purpose.recipients)
    assert body["withdrawal"] == purpose.withdrawal.model_dump() and body["rights"] == purpose.rights.model_dump()
    assert len(body["returns"]) == len(purpose.returns)
    assert (body["retention_months"], body["consent_validity_months"]) == (
        purpose.retention_months, purpose.consent_validity_months)


def test_ensure_notice_stores_each_version_once(session: Session, policy: Policy, clock: FixedClock) -> None:
    purpose = plain_purpose(policy)
    first = ensure_notice(session, policy, purpose, clock.now())
    again = ensure_notice(session, policy, purpose, clock.now())
    assert first.id == again.id == f"{purpose.id}@{purpose.version}"
    assert first.sha256 == sha256_hex(first.body.encode()) == sha256_hex(canonical_json(notice_body(policy, purpose)))
    assert json.loads(first.body) == notice_body(policy, purpose)
    assert len(session.exec(select(Notice)).all()) == 1


def test_a_text_change_without_a_version_bump_is_refused(session: Session, policy: Policy,
                                                         clock: FixedClock) -> None:
    purpose = plain_purpose(policy)
    ensure_notice(session, policy, purpose, clock.now())
    quietly = purpose.model_copy(update={"retention_months": purpose.retention_months + 12})
    with pytest.raises(NoticeChanged):
        ensure_notice(session, with_purpose(policy, quietly), quietly, clock.now())
    bumped = quietly.model_copy(update={"version": purpose.version + 1})
    assert ensure_notice(session, with_purpose(policy, bumped), bumped, clock.now()).purpose_version == bumped.version


def test_ensure_notice_is_safe_when_two_workers_race(engine: Engine, policy: Policy, clock: FixedClock) -> None:
    purpose = plain_purpose(policy)
    results: list[str] = []
    errors: list[BaseException] = []

    def second_worker() -> None:
        try:
            with session_scope(engine) as session:
                results.append(ensure_notice(session, policy, purpose, clock.now()).sha256)
        except BaseException as exc:  # reported to the main thread below
            errors.append(exc)

    with session_scope(engine) as session:
        results.append(ensure_notice(session, policy, purpose, clock.now()).sha256)
        worker = threading.Thread(target=second_worker)
        worker.start()
        time.sleep(0.3)  # the second worker now waits on our uncommitted row (or on SQLite's write lock)
    worker.join(timeout=30)
    assert not worker.is_alive() and errors == []
    assert len(results) == 2 and results[0] == results[1]
    with session_scope(engine) as session:
        assert len(session.exec(select(Notice)).all()) == 1
