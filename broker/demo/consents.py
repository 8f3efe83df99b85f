"""The demo city's consent ledger: who agreed to what, when, and who changed their mind.

Records follow the ledger's own rules (``broker.consent.ledger``) so that the seeded history is one the
ledger could have written: only active purposes whose legal basis is consent; special-category purposes by
explicit consent and, when they ask for 18, adults only; below a purpose's minimum age (Art 8; 15 in France)
a ``given`` is expressed by an adult guardian, while refusing and withdrawing never wait for one; a
withdrawal is a second record pointing at the first; a ``given`` lasts ``consent_validity_months``.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from broker.consent.ledger import SCHEMA_VERSION
from broker.consent.models import Notice
from broker.demo.evidence import RECEIPT_TIME_SEP, RECEIPT_TIME_SUFFIX, EvidenceFactory
from broker.demo.guardianships import link_since
from broker.demo.population import ADULT_AGE, CitizenBatch, uuid4_strings
from broker.demo.timestamps import US_PER_DAY, US_PER_SECOND, add_months, ages_on, format_instants, instants_to_days
from broker.policy.schema import Policy, Purpose

# Share of citizens who give each known purpose; others get 35-65 %, special categories 20 %.
CONSENT_RATES = {
    "air-quality-study": 0.42,
    "parking-availability": 0.55,
    "energy-renovation": 0.48,
    "public-health-study": 0.2,
}
SPECIAL_CATEGORY_RATE = 0.2
ENGAGEMENT_WEIGHT = 0.9          # how much one latent trait ties a citizen's answers together
GUARDIAN_ODDS = 0.6              # guardians agree for a minor less readily than adults for themselves
REFUSED_SHARE = 0.12             # of those who did not give, share who said no explicitly
WITHDRAWN_SHARE = 0.08           # of those who gave, share who withdrew since
API_SHARE = 0.15                 # decisions made through the JSON API rather than the portal pages
HISTORY_DAYS = 360               # consents given within the last year (never expired: no sweep needed)
MINUTE_US = 60 * US_PER_SECOND

CONSENT_COLUMNS = ("id", "schema_version", "pseudonym", "purpose_id", "purpose_version", "state", "created_at",
                   "valid_from", "valid_until", "method", "expressed_by", "guardian_pseudonym", "consent_type",
                   "notice_id", "language", "jurisdiction", "previous_id", "evidence")


def consent_purposes(policy: Policy) -> list[Purpose]:
    return [p for p in policy.purposes if p.takes_consent and p.status == "active"]


def consent_rate(purpose: Purpose) -> float:
    if purpose.id in CONSENT_RATES:
        return CONSENT_RATES[purpose.id]
    if purpose.special_category:
        return SPECIAL_CATEGORY_RATE
    return 0.35 + 0.3 * (zlib.crc32(purpose.id.encode()) % 1000) / 1000


@dataclass
class _Records:
    """Column arrays of consent records for one purpose (index = one record)."""

    citizen: np.ndarray
    state: np.ndarray
    method: np.ndarray
    expressed_by: np.ndarray
    guardian: np.ndarray      # citizen index of the guardian, -1 for none
    created: np.ndarray
    valid_until: np.ndarray   # -1 for none
    previous: np.ndarray      # position of the previous record in the first-records list, -1 for none


@dataclass
class ConsentOutcome:
    rows: list[tuple]
    given_now: dict[str, np.ndarray]  # purpose id -> bool per citizen: a consent that counts today


def _method(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.where(rng.random(n) < API_SHARE, "api", "portal").astype(object)


def _draw(rng: np.random.Generator, policy: Policy, purpose: Purpose, batch: CitizenBatch, guardians: np.ndarray,
          today_us: int) -> tuple[_Records, _Records, np.ndarray]:
    n = len(batch)
    minimum = policy.minimum_age(purpose)
    adults_only = minimum >= ADULT_AGE
    rate = consent_rate(purpose)
    logit = math.log(rate / (1 - rate)) + ENGAGEMENT_WEIGHT * batch.engagement
    logit = np.where(batch.age < minimum, logit + math.log(GUARDIAN_ODDS), logit)
    gives = rng.random(n) < 1 / (1 + np.exp(-logit))
    refuses = ~gives & (rng.random(n) < REFUSED_SHARE)

    window = min(HISTORY_DAYS, purpose.consent_validity_months * 28) * US_PER_DAY
    latest = today_us - MINUTE_US
    # A minor's answers come once their guardian's link holds, so that a guardian's consent is never older
    # than the link it rests on.
    earliest = np.maximum(link_since(batch, guardians), today_us - window)
    decided = earliest + (rng.random(n) * (latest - earliest)).astype(np.int64)
    age_then = ages_on(batch.birth, instants_to_days(decided))
    if adults_only:
        # The notice says the purpose is for adults; nobody younger is asked, so nobody younger answers.
        gives &= age_then >= ADULT_AGE
        refuses &= age_then >= ADULT_AGE
    needs_guardian = age_then < minimum
    gives &= ~needs_guardian | (guardians >= 0)

    withdraws = gives & (rng.random(n) < WITHDRAWN_SHARE)
    # At least an hour after giving (less only when given in the last two hours), never after ``latest``.
    pause = np.minimum(3600 * US_PER_SECOND, (latest - decided) // 2)
    withdrawn_at = decided + pause + (rng.random(n) * (latest - decided - pause)).astype(np.int64)
    methods = _method(rng, n)
    withdraw_methods = _method(rng, n)

    first = np.flatnonzero(gives | refuses)
    by_guardian = gives[first] & needs_guardian[first]
    state = np.where(gives[first], "given", "refused").astype(object)
    valid_until = np.full(first.size, -1, dtype=np.int64)
    valid_until[gives[first]] = add_months(decided[first][gives[first]], purpose.consent_validity_months)
    firsts = _Records(
        citizen=first, state=state,
        method=np.where(by_guardian, "guardian", methods[first]).astype(object),
        expressed_by=np.where(by_guardian, "guardian", "self").astype(object),
        guardian=np.where(by_guardian, guardians[first], -1),
        created=decided[first], valid_until=valid_until, previous=np.full(first.size, -1, dtype=np.int64),
    )
    later = np.flatnonzero(withdraws)
    followups = _Records(
        citizen=later, state=np.full(later.size, "withdrawn", dtype=object), method=withdraw_methods[later],
        expressed_by=np.full(later.size, "self", dtype=object), guardian=np.full(later.size, -1),
        created=withdrawn_at[later], valid_until=np.full(later.size, -1, dtype=np.int64),
        previous=np.searchsorted(first, later),
    )
    return firsts, followups, gives & ~withdraws


def generate_consents(rng: np.random.Generator, policy: Policy, batch: CitizenBatch, guardians: np.ndarray,
                      notices: dict[str, Notice], evidence: EvidenceFactory, *, today_us: int,
                      storage_instants: Callable[[np.ndarray], list[str | None]],
                      jurisdiction: str, check_all: bool = False) -> ConsentOutcome:
    """Consent records for one batch: every first answer, then every withdrawal (so ``seq`` orders them)."""
    if batch.pseudonyms is None:
        raise ValueError("pseudonyms are computed with the citizens' rows first")
    pseudonyms = batch.pseudonyms
    firsts_rows: list[tuple] = []
    followup_rows: list[tuple] = []
    given_now: dict[str, np.ndarray] = {}
    for purpose in consent_purposes(policy):
        firsts, followups, counting = _draw(rng, policy, purpose, batch, guardians, today_us)
        given_now[purpose.id] = counting
        first_ids = uuid4_strings(rng, firsts.citizen.size)
        later_ids = uuid4_strings(rng, followups.citizen.size)
        previous_ids = [first_ids[p] for p in followups.previous.tolist()]
        common = dict(notice=notices[purpose.id], purpose=purpose, pseudonyms=pseudonyms, locale=batch.locale,
                      evidence=evidence, storage_instants=storage_instants, check_all=check_all,
                      jurisdiction=jurisdiction)
        firsts_rows.extend(_rows(firsts, first_ids, [None] * len(first_ids), **common))
        followup_rows.extend(_rows(followups, later_ids, previous_ids, **common))
    return ConsentOutcome(rows=firsts_rows + followup_rows, given_now=given_now)


def _optional(values: np.ndarray, present: np.ndarray, formatted: list[str]) -> list[str | None]:
    out: list[str | None] = [None] * values.size
    for position, text in zip(np.flatnonzero(present).tolist(), formatted, strict=True):
        out[position] = text
    return out


def _rows(records: _Records, ids: list[str], previous_ids: list[str | None], *, notice: Notice, purpose: Purpose,
          pseudonyms: np.ndarray, locale: np.ndarray, evidence: EvidenceFactory,
          storage_instants: Callable[[np.ndarray], list[str | None]], check_all: bool,
          jurisdiction: str) -> list[tuple]:
    count = records.citizen.size
    if count == 0:
        return []
    subject = pseudonyms[records.citizen].tolist()
    has_guardian = records.guardian >= 0
    guardian = _optional(records.guardian, has_guardian, pseudonyms[records.guardian[has_guardian]].tolist())
    language = locale[records.citizen]
    has_until = records.valid_until >= 0
    receipt = dict(sep=RECEIPT_TIME_SEP, suffix=RECEIPT_TIME_SUFFIX)
    created_text = format_instants(records.created, **receipt)
    until_text = _optional(records.valid_until, has_until, format_instants(records.valid_until[has_until], **receipt))
    columns = {"id": ids, "previous_id": previous_ids, "pseudonym": subject, "guardian_pseudonym": guardian,
               "created_at": created_text, "valid_from": created_text, "valid_until": until_text}
    until_us: list[int | None] = [u if u >= 0 else None for u in records.valid_until.tolist()]
    created_us = records.created.tolist()
    instants = {"created_at": created_us, "valid_from": created_us, "valid_until": until_us}

    consent_type = "explicit" if purpose.special_category else "expressed"
    digests: list[str | None] = [None] * count
    classes = np.stack([records.state, records.method, records.expressed_by, language]).T.tolist()
    groups: dict[tuple, list[int]] = {}
    for position, key in enumerate(classes):
        groups.setdefault(tuple(key), []).append(position)
    for (state, method, expressed_by, lang), positions in groups.items():
        fixed = dict(schema_version=SCHEMA_VERSION, purpose_id=purpose.id, purpose_version=purpose.version,
                     state=state, method=method, expressed_by=expressed_by, consent_type=consent_type,
                     language=lang, jurisdiction=jurisdiction)
        part_columns = {k: [v[p] for p in positions] for k, v in columns.items()}
        part_instants = {k: [v[p] for p in positions] for k, v in instants.items()}
        part = evidence.digests(notice, fixed, part_columns, part_instants)
        size = len(positions)
        sample = range(size) if check_all else sorted({0, size // 2, size - 1})
        evidence.check(notice, fixed, part_columns, part_instants, part, sample)
        for p, digest in zip(positions, part, strict=True):
            digests[p] = digest

    stored_created = storage_instants(records.created)
    stored_until = _optional(records.valid_until, has_until, storage_instants(records.valid_until[has_until]))
    state, method, expressed_by = records.state.tolist(), records.method.tolist(), records.expressed_by.tolist()
    languages = language.tolist()
    return [
        (ids[i], SCHEMA_VERSION, subject[i], purpose.id, purpose.version, state[i], stored_created[i],
         stored_created[i], stored_until[i], method[i], expressed_by[i], guardian[i], consent_type, notice.id,
         languages[i], jurisdiction, previous_ids[i], digests[i])
        for i in range(count)
    ]

