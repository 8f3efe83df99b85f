"""Notices: the exact information a citizen was shown before deciding on one purpose version.

Art 7(1) puts the burden of proof on the controller, and Art 13 lists what the citizen must have been told.
The notice body gathers those items from the policy; it is stored once per ``<purpose>@<version>`` as
canonical JSON (RFC 8785) with its SHA-256, and every consent record points to it, so a receipt can name the
hash of the very text the citizen read.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from broker.consent.models import Notice
from broker.errors import Conflict
from broker.keys import canonical_json, sha256_hex
from broker.policy.schema import LEGAL_BASES, Policy, Purpose
from broker.timeutil import as_utc


class NoticeChanged(Conflict):
    """The policy's texts for a purpose version differ from the notice already stored for that version."""

    code = "notice-changed"
    title = "Notice changed without a version bump"


def notice_id(purpose: Purpose) -> str:
    return f"{purpose.id}@{purpose.version}"


def _data_categories(policy: Policy, purpose: Purpose) -> list[dict[str, Any]]:
    """Datasets and the fields of each that the purpose reads: measured fields and group-by keys alike."""
    categories = []
    for use in purpose.datasets:
        dataset = policy.dataset(use.dataset)
        names = list(dict.fromkeys([*use.fields, *use.group_by]))
        fields = []
        for name in names:
            field = dataset.field(name) if dataset is not None else None
            fields.append({
                "name": name,
                "description": field.description.model_dump() if field is not None else None,
                "unit": field.unit if field is not None else None,
            })
        categories.append({
            "dataset": use.dataset,
            "title": dataset.title.model_dump() if dataset is not None else None,
            "fields": fields,
            "statistics": [str(s) for s in use.statistics],
            "group_by": list(use.group_by),
        })
    return categories


def notice_body(policy: Policy, purpose: Purpose) -> dict[str, Any]:
    """Everything the citizen is shown for ``purpose`` (Art 13), in both portal languages.

    Budgets and the purpose's status are left out: they govern the broker, not what the citizen agrees to,
    and leaving them out keeps the notice stable when an operator tunes them.
    """
    return {
        "notice_id": notice_id(purpose),
        "jurisdiction": policy.broker.jurisdiction,
        "controller": {**policy.broker.controller.model_dump(), "department": purpose.controller},
        "purpose": {
            "id": purpose.id,
            "version": purpose.version,
            "title": purpose.title.model_dump(),
            "description": purpose.description.model_dump(),
            "dpv_purpose": purpose.dpv_purpose,
        },
        "legal_basis": {"code": purpose.legal_basis, "label": LEGAL_BASES[purpose.legal_basis]},
        "special_category": purpose.special_category,
        "special_category_kinds": list(purpose.special_category_kinds),
        "minimum_age": policy.minimum_age(purpose),
        "automated_decision": purpose.automated_decision,
        "data_categories": _data_categories(policy, purpose),
        "recipients": list(purpose.recipients),
        "retention_months": purpose.retention_months,
        "consent_validity_months": purpose.consent_validity_months,
        "withdrawal": purpose.withdrawal.model_dump(),
        "rights": purpose.rights.model_dump(),
        "returns": [
            {"kind": str(r.kind), "description": r.description.model_dump(), "amount_cents": r.amount_cents}
            for r in purpose.returns
        ],
        "publish_open_data": purpose.publish_open_data,
    }


def ensure_notice(session: Session, policy: Policy, purpose: Purpose, now: datetime) -> Notice:
    """The stored notice of this purpose version, inserted first if absent.

    Race-safe: two workers may show the same new version at once, so the insert ignores a conflicting row
    rather than failing. If the stored text differs from the policy's, the policy changed materially without
    a version bump; recording consent against a text other than the one shown would be no proof, so refuse.
    """
    body = notice_body(policy, purpose)
    text = canonical_json(body)
    digest = sha256_hex(text)
    nid = notice_id(purpose)
    existing = session.get(Notice, nid)
    if existing is None:
        values = {"id": nid, "purpose_id": purpose.id, "purpose_version": purpose.version, "sha256": digest,
                  "body": text.decode(), "created_at": as_utc(now)}
        dialect = session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        session.execute(insert(Notice).values(**values).on_conflict_do_nothing(index_elements=["id"]))
        existing = session.get(Notice, nid)
        if existing is None:  # pragma: no cover - the row exists once the insert returns
            raise RuntimeError(f"notice {nid} vanished after insert")
    if existing.sha256 != digest:
        raise NoticeChanged(f"the texts of purpose {purpose.id} changed without a version bump; "
                            f"bump its version so citizens are asked again")
    return existing


def notice_document(notice: Notice) -> dict[str, Any]:
    """The stored body of ``notice`` as a dict."""
    return json.loads(notice.body)
