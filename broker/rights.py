"""Data subjects' rights as domain functions: Art 15/20 access and portability, Art 17 erasure.

Erasure is crypto-shredding plus deletion: the vault rows go, the citizen's data key is destroyed so every
copy of the encrypted identifiers (backups included) becomes unreadable, and the link from email to
pseudonym (the blind index) goes. The consent history stays, under the pseudonym only, because the controller
must still be able to prove what was consented to and when (Art 7(1)).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from broker.audit import AuditEvent, actions
from broker.audit import record as record_audit
from broker.consent.models import ConsentRecord, Notice
from broker.identity.citizens import CitizenService
from broker.identity.guardianship import Guardianships
from broker.identity.models import Account, Citizen
from broker.keys import Secrets
from broker.policy.schema import FieldType, Policy
from broker.timeutil import as_utc
from broker.vault.tables import vault_metadata

EXPORT_FORMAT = "consent-broker/citizen-export@1"


def _iso(value: datetime | None) -> str | None:
    return as_utc(value).isoformat() if value else None


def export_citizen(session: Session, policy: Policy, secrets: Secrets, citizen: Citizen,
                   now: datetime) -> dict[str, Any]:
    """Everything held about one citizen, as one JSON document (Art 15 access, Art 20 portability)."""
    identifiers = CitizenService(session, secrets).identifiers(citizen)
    account = session.exec(select(Account).where(Account.citizen_id == citizen.id)).first()
    records = session.exec(
        select(ConsentRecord).where(ConsentRecord.pseudonym == citizen.pseudonym).order_by(ConsentRecord.seq)
    ).all()
    notice_ids = sorted({r.notice_id for r in records})
    notices = session.exec(select(Notice).where(col(Notice.id).in_(notice_ids))).all()
    return {
        "format": EXPORT_FORMAT,
        "generated_at": now.isoformat(),
        "controller": policy.broker.controller.model_dump(),
        "citizen": {
            "id": citizen.id,
            "pseudonym": citizen.pseudonym,
            "email": identifiers.email,
            "name": identifiers.name,
            "birth_date": citizen.birth_date.isoformat() if citizen.birth_date else None,
            "district": citizen.district,
            "locale": citizen.locale,
            "privacy_cap": citizen.privacy_cap,
            "registered_at": _iso(citizen.created_at),
            "restricted_at": _iso(citizen.restricted_at),
        },
        "account": {"role": account.role, "created_at": _iso(account.created_at)} if account else None,
        "consent_records": [_record(r) for r in records],
        # Links the city recorded with this citizen as guardian or ward; the other person is not named here.
        "guardianships": [{"link_id": g.id, "role": "guardian" if g.guardian_id == citizen.id else "ward",
                           "basis": g.basis, "since": _iso(g.since), "ended_at": _iso(g.ended_at)}
                          for g in Guardianships(session).links_of(citizen)],
        "notices": {n.id: {"sha256": n.sha256, "body": n.body} for n in notices},
        "records": _vault_records(session, policy, citizen.pseudonym),
    }


def _record(record: ConsentRecord) -> dict[str, Any]:
    body = record.model_dump(mode="json", exclude={"seq"})
    for key in ("created_at", "valid_from", "valid_until"):
        body[key] = _iso(getattr(record, key))
    return body


def _vault_records(session: Session, policy: Policy, pseudonym: str) -> dict[str, list[dict[str, Any]]]:
    _, tables = vault_metadata(policy)
    out: dict[str, list[dict[str, Any]]] = {}
    for dataset in policy.datasets:
        table = tables[dataset.id]
        rows = session.connection().execute(
            core_select(table).where(table.c.pseudonym == pseudonym).order_by(table.c.id)
        ).mappings()
        items = []
        for row in rows:
            item: dict[str, Any] = {}
            for field in dataset.fields:
                value = row[field.name]
                if value is None:
                    item[field.name] = None
                elif field.type is FieldType.timestamp:
                    item[field.name] = _iso(value)
                elif field.type is FieldType.decimal:
                    item[field.name] = field.from_fixed(value)
                else:
                    item[field.name] = value
            items.append(item)
        out[dataset.id] = items
    return out


def erase_citizen(session: Session, policy: Policy, citizen: Citizen, now: datetime, *,
                  actor: str | None = None) -> dict[str, int]:
    """Art 17 erasure. Returns how many vault rows went, per dataset.

    ``actor`` is who asked (default: the citizen themself); the audit entry names the citizen by pseudonym only.
    """
    _, tables = vault_metadata(policy)
    deleted = {}
    for dataset_id, table in tables.items():
        result = session.connection().execute(delete(table).where(table.c.pseudonym == citizen.pseudonym))
        deleted[dataset_id] = result.rowcount or 0
    session.connection().execute(delete(Account).where(col(Account.citizen_id) == citizen.id))
    citizen.wrapped_key = None  # crypto-shredding: email_ct and name_ct can never be opened again
    citizen.email_index = None
    citizen.birth_date = None
    citizen.district = None
    citizen.privacy_cap = None
    citizen.erased_at = now
    session.add(citizen)
    session.flush()
    record_audit(session, AuditEvent(actor=actor or actions.citizen(citizen.pseudonym), action=actions.ERASURE,
                                     subject=citizen.pseudonym, details={"vault_rows": deleted}), now)
    return deleted
