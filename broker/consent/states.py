"""The consent lifecycle: states, the transitions allowed between them, and the effective status of a pair.

States follow ISO/IEC TS 27560 and the Kantara consent receipt: ``requested``, ``given``, ``refused``,
``paused``, ``withdrawn``, ``revoked`` (ended by the controller) and ``expired``. A renewal is a new ``given``
record. Transitions are checked against the *effective* state of a (citizen, purpose) pair, which is the
newest record's state corrected for what has happened since it was written: a purpose version bump turns it
back into ``requested`` (the citizen is asked again) and a passed ``valid_until`` into ``expired``, even
before the expiry sweep has appended the ``expired`` record.

Pure functions only: the ledger feeds them rows and the time; nothing here touches the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from broker.consent.models import ConsentRecord
from broker.identity.models import Citizen
from broker.policy.schema import Purpose
from broker.timeutil import as_utc


class ConsentState(StrEnum):
    requested = "requested"
    given = "given"
    refused = "refused"
    paused = "paused"
    withdrawn = "withdrawn"
    revoked = "revoked"
    expired = "expired"


S = ConsentState

# What may follow each effective state. ``given → given`` is a renewal (a new record with a fresh validity);
# ``revoked`` is written only by the controller and ``expired`` only by the expiry sweep. After a consent was
# ended by someone else (revoked, expired) the citizen may answer the renewed request either way; after
# their own "no" (refused, withdrawn) only a new "yes" is a change.
TRANSITIONS: dict[ConsentState, frozenset[ConsentState]] = {
    S.requested: frozenset({S.given, S.refused}),
    S.given: frozenset({S.given, S.paused, S.withdrawn, S.revoked, S.expired}),
    S.paused: frozenset({S.given, S.withdrawn, S.revoked}),
    S.refused: frozenset({S.given}),
    S.withdrawn: frozenset({S.given}),
    S.revoked: frozenset({S.given, S.refused}),
    S.expired: frozenset({S.given, S.refused}),
}

# States a citizen (or their guardian) sets with one call; withdrawing is exactly as easy as giving.
CITIZEN_STATES = frozenset({S.given, S.refused, S.paused, S.withdrawn})

# Saying the same "no" twice changes nothing: the call answers with the newest record and appends none, so a
# repeated PUT or a double click is harmless. Giving twice is a renewal and does append.
IDEMPOTENT_STATES = frozenset({S.refused, S.paused, S.withdrawn})

# A consent once given can always be withdrawn (Art 7(3)), even when it has already stopped counting because
# the purpose version moved on or its validity ran out: the record then ends that older consent.
WITHDRAWABLE_RECORD_STATES = frozenset({S.given, S.paused})


class NotCounting(StrEnum):
    """Why a consent does not count now (``ConsentStatus.reason``)."""

    not_consent_based = "legal-basis-not-consent"
    no_consent = "no-consent"
    version_changed = "purpose-version-changed"
    expired = "consent-expired"
    purpose_not_active = "purpose-not-active"
    restricted = "citizen-restricted"
    erased = "citizen-erased"


@dataclass(frozen=True)
class ConsentStatus:
    """The effective consent of one citizen for one purpose, at one moment.

    ``state`` is None only for purposes whose legal basis is not consent: they are listed for transparency
    and can never be given or withdrawn. ``record`` is the newest record of the pair, whatever its version.
    """

    purpose_id: str
    purpose_version: int
    legal_basis: str
    takes_consent: bool
    state: ConsentState | None
    record: ConsentRecord | None
    counts: bool
    reason: NotCounting | None
    valid_until: datetime | None


def effective_status(purpose: Purpose, record: ConsentRecord | None, citizen: Citizen | None,
                     now: datetime) -> ConsentStatus:
    """Whether ``record`` (the newest of the pair) makes a consent that counts for ``purpose`` at ``now``."""

    def status(state: ConsentState | None, reason: NotCounting | None) -> ConsentStatus:
        valid_until = as_utc(record.valid_until) if record is not None and record.valid_until else None
        return ConsentStatus(purpose_id=purpose.id, purpose_version=purpose.version,
                             legal_basis=purpose.legal_basis, takes_consent=purpose.takes_consent,
                             state=state, record=record, counts=reason is None, reason=reason,
                             valid_until=valid_until if state is S.given else None)

    if not purpose.takes_consent:
        return status(None, NotCounting.not_consent_based)
    if record is None or record.purpose_version != purpose.version:
        # A material change: whatever was said about the earlier version no longer answers this one.
        return status(S.requested, NotCounting.version_changed if record is not None else NotCounting.no_consent)
    state = ConsentState(record.state)
    if state is S.given and (record.valid_until is None or as_utc(record.valid_until) <= now):
        return status(S.expired, NotCounting.expired)
    if state is not S.given:
        return status(state, NotCounting.no_consent)
    if purpose.status != "active":
        return status(state, NotCounting.purpose_not_active)
    if citizen is None or citizen.erased_at is not None:
        return status(state, NotCounting.erased)
    if citizen.restricted_at is not None:
        return status(state, NotCounting.restricted)
    return status(state, None)


def transition_allowed(current: ConsentStatus, target: ConsentState) -> bool:
    if current.state is None:
        return False
    if target is S.withdrawn and current.record is not None and current.record.state in WITHDRAWABLE_RECORD_STATES:
        return True
    return target in TRANSITIONS[current.state]
