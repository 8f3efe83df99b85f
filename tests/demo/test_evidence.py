"""Fast consent evidence: byte-identical to ``receipt_payload`` + JCS, and safe when that function changes."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from broker.consent.ledger import SCHEMA_VERSION
from broker.consent.models import Notice
from broker.consent.notices import notice_body, notice_id
from broker.demo import evidence as evidence_module
from broker.demo.evidence import RECEIPT_TIME_SEP, RECEIPT_TIME_SUFFIX, EvidenceFactory, EvidenceMismatch
from broker.demo.population import uuid4_strings
from broker.demo.timestamps import format_instants, to_us
from broker.keys import canonical_json, sha256_hex
from broker.policy import Policy

N = 40


def _notice(policy: Policy) -> Notice:
    purpose = next(p for p in policy.purposes if p.takes_consent)
    text = canonical_json(notice_body(policy, purpose))
    return Notice(id=notice_id(purpose), purpose_id=purpose.id, purpose_version=purpose.version,
                  sha256=sha256_hex(text), body=text.decode(), created_at=datetime(2026, 1, 1, tzinfo=UTC))


def _batch(notice: Notice) -> tuple[dict, dict, dict]:
    rng = np.random.default_rng(4)
    fixed = dict(schema_version=SCHEMA_VERSION, purpose_id=notice.purpose_id, purpose_version=notice.purpose_version,
                 state="given", method="portal", expressed_by="self", consent_type="expressed", language="fr",
                 jurisdiction="FR")
    created = to_us(datetime(2025, 6, 1, tzinfo=UTC)) + rng.integers(0, 10**13, size=N)
    until: list[int | None] = [int(c) + 10**12 if i % 3 else None for i, c in enumerate(created.tolist())]
    receipt = dict(sep=RECEIPT_TIME_SEP, suffix=RECEIPT_TIME_SUFFIX)
    created_text = format_instants(created, **receipt)
    until_text = [format_instants(np.array([u]), **receipt)[0] if u is not None else None for u in until]
    ids = uuid4_strings(rng, N)
    columns = {"id": ids, "previous_id": [ids[i - 1] if i % 4 == 1 else None for i in range(N)],
               "pseudonym": [f"{i:064x}" for i in range(N)],
               "guardian_pseudonym": [f"{i + 7:064x}" if i % 5 == 0 else None for i in range(N)],
               "created_at": created_text, "valid_from": created_text, "valid_until": until_text}
    instants = {"created_at": created.tolist(), "valid_from": created.tolist(), "valid_until": until}
    return fixed, columns, instants


def test_fast_evidence_equals_the_ledger_s(policy: Policy) -> None:
    notice = _notice(policy)
    fixed, columns, instants = _batch(notice)
    factory = EvidenceFactory()
    digests = factory.digests(notice, fixed, columns, instants)
    assert digests == [factory.reference(notice, fixed, columns, instants, i) for i in range(N)]
    assert factory.slow_records == 0
    factory.check(notice, fixed, columns, instants, digests, range(N))
    with pytest.raises(EvidenceMismatch):
        factory.check(notice, fixed, columns, instants, ["0" * 64, *digests[1:]], [0])


def test_a_changed_receipt_format_falls_back_to_the_slow_path(policy: Policy,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    original = evidence_module.receipt_payload

    def reformatted(record, notice):  # type: ignore[no-untyped-def]
        payload = original(record, notice)
        payload["timestamps"] = {k: v and v.replace("Z", "+00:00") for k, v in payload["timestamps"].items()}
        return payload

    monkeypatch.setattr(evidence_module, "receipt_payload", reformatted)
    notice = _notice(policy)
    fixed, columns, instants = _batch(notice)
    factory = EvidenceFactory()
    digests = factory.digests(notice, fixed, columns, instants)
    assert factory.slow_records == N
    assert digests == [factory.reference(notice, fixed, columns, instants, i) for i in range(N)]
