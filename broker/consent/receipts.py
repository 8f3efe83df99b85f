"""Consent receipts: each consent record as an ISO/IEC TS 27560-style JSON document, signed as a compact JWS.

ISO/IEC TS 27560:2023 (consent record information structure) and the Kantara Initiative Consent Receipt
Specification v1.1 name the fields: record id, schema version, timestamps, jurisdiction, language, collection
method, the subject (here only their pseudonym), who expressed the consent (self or guardian), the
controller, the notice (id, version, text hash), the purpose with its legal basis, the consent type
(expressed or explicit), data categories, recipients, retention, validity, how to withdraw, the state, and
the previous record of the chain.

The payload is a pure function of the record's stored columns and the stored notice, without a signing time
or anything else that varies, so a receipt can be re-signed at any time (after a key rotation, say) and the
record's ``evidence`` column, SHA-256 of the canonical payload, still matches. Receipts are signed ES256 with
the broker's current key and carry its ``kid``; anyone can check them offline against
``/.well-known/jwks.json`` (RFC 7515 compact serialisation, RFC 7517 key set).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from broker.consent.models import ConsentRecord, Notice
from broker.consent.notices import notice_document
from broker.keys import KeyRing, canonical_json, sha256_hex, verify_compact
from broker.timeutil import as_utc

RECEIPT_TYP = "consent-receipt+jwt"
RECEIPT_SCHEMA = "ISO/IEC TS 27560:2023"


def _timestamp(value: datetime | None) -> str | None:
    """UTC, microseconds, ``Z``: the same instant always prints the same, whichever database returned it."""
    if value is None:
        return None
    return as_utc(value).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _in(language: str, text: dict[str, str] | None) -> str | None:
    if text is None:
        return None
    return text.get(language) or text.get("en") or next(iter(text.values()), None)


def receipt_payload(record: ConsentRecord, notice: Notice) -> dict[str, Any]:
    """The receipt of ``record``; deterministic, and free of any session use (a bulk seeder calls it)."""
    if notice.id != record.notice_id:
        raise ValueError(f"record {record.id} points to notice {record.notice_id}, not {notice.id}")
    body = notice_document(notice)
    lang = record.language
    purpose = body["purpose"]
    return {
        "schema": RECEIPT_SCHEMA,
        "schema_version": record.schema_version,
        "record_id": record.id,
        "previous_record_id": record.previous_id,
        "jurisdiction": record.jurisdiction,
        "language": lang,
        "timestamps": {
            "recorded": _timestamp(record.created_at),
            "valid_from": _timestamp(record.valid_from),
            "valid_until": _timestamp(record.valid_until),
        },
        "subject": {
            "pseudonym": record.pseudonym,
            "expressed_by": record.expressed_by,
            "guardian_pseudonym": record.guardian_pseudonym,
        },
        "collection_method": record.method,
        "controller": body["controller"],
        "notice": {"id": notice.id, "version": notice.purpose_version, "sha256": notice.sha256},
        "purpose": {
            "id": record.purpose_id,
            "version": record.purpose_version,
            "title": _in(lang, purpose["title"]),
            "description": _in(lang, purpose["description"]),
            "dpv_purpose": purpose["dpv_purpose"],
        },
        "legal_basis": body["legal_basis"]["code"],
        "consent_type": record.consent_type,
        "special_category": body["special_category"],
        "special_category_kinds": body["special_category_kinds"],
        "data_categories": [
            {"dataset": c["dataset"], "title": _in(lang, c["title"]), "fields": [f["name"] for f in c["fields"]]}
            for c in body["data_categories"]
        ],
        "recipients": body["recipients"],
        "retention_months": body["retention_months"],
        "consent_validity_months": body["consent_validity_months"],
        "withdrawal_method": _in(lang, body["withdrawal"]),
        "state": record.state,
    }


def evidence_of(payload: dict[str, Any]) -> str:
    """What the record's ``evidence`` column holds: SHA-256 of the canonical receipt payload."""
    return sha256_hex(canonical_json(payload))


def sign_receipt(keyring: KeyRing, payload: dict[str, Any]) -> str:
    return keyring.sign(payload, typ=RECEIPT_TYP)


def verify_receipt(token: str, jwks: dict[str, Any]) -> dict[str, Any]:
    """The payload of a receipt that verifies against ``jwks``; raises ``keys.SignatureInvalid`` otherwise."""
    return verify_compact(token, jwks, typ=RECEIPT_TYP)
