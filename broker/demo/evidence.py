"""Consent-record evidence for millions of seeded records, byte-identical to the ledger's.

A record's ``evidence`` is SHA-256 of the RFC 8785 canonical JSON of ``receipt_payload(record, notice)``.
Canonicalising each payload in pure Python costs ~100 µs, too slow for a million-citizen city. But records
that share a notice, a language, a state, a method and the other few categorical columns produce the same
payload except at a handful of string leaves (ids, pseudonyms, timestamps). So we render the canonical text
once with unmistakable placeholders, cut it at the placeholders, and for each record hash the pieces with
its own values spliced in. Canonical JSON sorts keys by name, never by value, so splicing cannot reorder
anything, and the values spliced in (UUIDs, hex pseudonyms, timestamps) never need JSON escaping.

Nothing here trusts that reasoning blindly: if a placeholder does not appear exactly once, that template
falls back to the real function, and :meth:`EvidenceFactory.check` recomputes sampled records through
``receipt_payload`` and refuses to continue on any difference.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np

from broker.consent.models import ConsentRecord, Notice
from broker.consent.receipts import evidence_of, receipt_payload
from broker.demo.timestamps import format_instants, from_us, to_us
from broker.keys import canonical_json

# Instants the receipts print as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``; placeholders are such instants in 1901.
RECEIPT_TIME_SEP, RECEIPT_TIME_SUFFIX = "T", "Z"
_TIME_SLOTS = ("created_at", "valid_from", "valid_until")
_TEXT_SLOTS = ("id", "previous_id", "pseudonym", "guardian_pseudonym")
_SENTINELS = {name: datetime(1901, 1, 1, 0, 0, i + 1, tzinfo=UTC) for i, name in enumerate(_TIME_SLOTS)}
_SAFE = re.compile(r"^[0-9A-Za-z:.\-]*$")


class EvidenceMismatch(RuntimeError):
    """The fast evidence disagreed with ``receipt_payload``: seeding stops rather than store wrong proofs."""


def _placeholder(name: str) -> str:
    return f"demo-evidence-slot-{name}"


class _Template:
    """The canonical payload of one class of records, cut at the per-record values."""

    def __init__(self, notice: Notice, fixed: dict[str, object]) -> None:
        self.notice = notice
        self.fixed = fixed
        probe = ConsentRecord(**fixed, **{n: _placeholder(n) for n in _TEXT_SLOTS}, **_SENTINELS,
                              notice_id=notice.id, evidence="")
        text = canonical_json(receipt_payload(probe, notice)).decode()
        marks = {n: f'"{_placeholder(n)}"' for n in _TEXT_SLOTS}
        marks.update({n: '"' + format_instants(np.array([to_us(_SENTINELS[n])]), sep=RECEIPT_TIME_SEP,
                                                suffix=RECEIPT_TIME_SUFFIX)[0] + '"' for n in _TIME_SLOTS})
        found = {n: text.find(m) for n, m in marks.items()}
        self.fast = all(text.count(m) == 1 for m in marks.values())
        if not self.fast:
            return
        order = sorted(found, key=found.__getitem__)
        self.slots = order
        pieces, at = [], 0
        for name in order:
            pieces.append(text[at:found[name]])
            at = found[name] + len(marks[name])
        pieces.append(text[at:])
        self.head = hashlib.sha256(pieces[0].encode())
        self.tails = pieces[1:]


class EvidenceFactory:
    """Evidence for batches of records; one template per notice and combination of categorical columns."""

    def __init__(self) -> None:
        self._templates: dict[tuple, _Template] = {}
        self.slow_records = 0

    def _template(self, notice: Notice, fixed: dict[str, object]) -> _Template:
        key = (notice.id, *sorted(fixed.items()))
        template = self._templates.get(key)
        if template is None:
            template = self._templates[key] = _Template(notice, fixed)
        return template

    def digests(self, notice: Notice, fixed: dict[str, object], columns: dict[str, Sequence[str | None]],
                instants: dict[str, Sequence[int | None]]) -> list[str]:
        """Evidence for each record of one class.

        ``columns`` holds, per record, the text columns (``id``, ``previous_id``, ``pseudonym``,
        ``guardian_pseudonym``) and the instants ``created_at``, ``valid_from``, ``valid_until`` printed in
        the receipt format; ``instants`` the same instants as µs, for the slow path.
        """
        template = self._template(notice, fixed)
        count = len(columns["id"])
        if not template.fast:
            self.slow_records += count
            return [self.reference(notice, fixed, columns, instants, i) for i in range(count)]
        # One %-format per class: a slot never null in this batch carries its quotes in the format string,
        # a nullable one is quoted (or null) per record. The values never need escaping (``check`` enforces it).
        fmt, slot_columns = [], []
        for name, tail in zip(template.slots, template.tails, strict=True):
            column = columns[name]
            if None in column:
                fmt.append("%s")
                slot_columns.append(["null" if v is None else f'"{v}"' for v in column])
            else:
                fmt.append('"%s"')
                slot_columns.append(column)
            fmt.append(tail.replace("%", "%%"))
        text = "".join(fmt)
        head_copy = template.head.copy
        out = []
        for row in zip(*slot_columns, strict=True):
            digest = head_copy()
            digest.update((text % row).encode())
            out.append(digest.hexdigest())
        return out

    @staticmethod
    def reference(notice: Notice, fixed: dict[str, object], columns: dict[str, Sequence[str | None]],
                  instants: dict[str, Sequence[int | None]], i: int) -> str:
        """Evidence of record ``i`` through the ledger's own path: ``receipt_payload`` then JCS."""
        times = {n: instants[n][i] for n in _TIME_SLOTS}
        record = ConsentRecord(
            **fixed, **{n: columns[n][i] for n in _TEXT_SLOTS},
            **{n: (from_us(t) if t is not None else None) for n, t in times.items()},
            notice_id=notice.id, evidence="",
        )
        return evidence_of(receipt_payload(record, notice))

    def check(self, notice: Notice, fixed: dict[str, object], columns: dict[str, Sequence[str | None]],
              instants: dict[str, Sequence[int | None]], digests: list[str], sample: Sequence[int]) -> None:
        """Recompute ``sample`` records through ``receipt_payload``; raise on the first difference."""
        for i in sample:
            for name in (*_TEXT_SLOTS, *_TIME_SLOTS):
                value = columns[name][i]
                if value is not None and not _SAFE.match(value):
                    raise EvidenceMismatch(f"{name} {value!r} would need JSON escaping")
            if self.reference(notice, fixed, columns, instants, i) != digests[i]:
                raise EvidenceMismatch(f"evidence of seeded record {columns['id'][i]} differs from receipt_payload")
