"""The consent ledger: the one service that writes consent records and says which consents count.

Records are append-only: every change of mind, renewal, revocation or expiry is a new record pointing to the
previous one (``previous_id``), so the chain itself proves what the citizen decided and when (Art 7(1)).
The current consent of a (citizen, purpose) pair is its newest record (highest ``seq``), read through
:func:`broker.consent.states.effective_status`.

Rules enforced here, each refused with a stable ``ConsentRuleViolation.rule``:

* only purposes whose legal basis is consent take consent (``legal-basis-not-consent``);
* withdrawing is one call, exactly like giving, and always works: for a restricted citizen, a suspended
  purpose, a minor without their guardian, and for a consent that already stopped counting;
* giving needs an active purpose (``purpose-not-active``) and a citizen whose processing is not restricted
  (``citizen-restricted``): Art 18 keeps the data but starts nothing new while the restriction stands, so the
  citizen gives again once it is lifted rather than a consent silently coming into force on lifting;
* a special-category purpose needs explicit confirmation (Art 9(2)(a), ``explicit-confirmation-required``);
* under the purpose's minimum age giving needs a registered adult guardian whom the city has linked to the
  minor (Art 8; see :mod:`broker.consent.guardians` for the codes and for citizens whose age is unknown);
* any other move outside :data:`broker.consent.states.TRANSITIONS` is ``invalid-transition``.
"""

from __future__ import annotations

import calendar
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, false, func, or_
from sqlmodel import Session, col, select

from broker.audit import AuditEvent, actions
from broker.audit import record as record_audit
from broker.consent.guardians import speaker_for
from broker.consent.models import ConsentRecord, CurrentConsent, NewestRecord, Notice
from broker.consent.notices import ensure_notice
from broker.consent.receipts import evidence_of, receipt_payload
from broker.consent.states import (
    CITIZEN_STATES,
    IDEMPOTENT_STATES,
    ConsentState,
    ConsentStatus,
    effective_status,
    transition_allowed,
)
from broker.db import not_among
from broker.errors import ConsentRuleViolation, InvalidRequest, NotFound
from broker.identity.citizens import CitizenErased
from broker.identity.guardianship import Guardianships
from broker.identity.models import Citizen
from broker.keys import Secrets
from broker.policy.schema import Policy, Purpose, Text
from broker.timeutil import Clock, as_utc

SCHEMA_VERSION = "27560-1"
LANGUAGES = tuple(Text.model_fields)
CITIZEN_METHODS = frozenset({"portal", "api"})
S = ConsentState


def add_months(moment: datetime, months: int) -> datetime:
    """Calendar months later, on the same day or the month's last day (31 Jan + 1 month = 28/29 Feb)."""
    total = moment.month - 1 + months
    year, month = moment.year + total // 12, total % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def _utc(moment: datetime) -> datetime:
    return as_utc(moment).astimezone(UTC)


class ConsentLedger:
    def __init__(self, session: Session, policy: Policy, secrets: Secrets, clock: Clock) -> None:
        self.session = session
        self.policy = policy
        self.secrets = secrets
        self.clock = clock

    # -- reading ------------------------------------------------------------------------------------------
    def current(self, citizen_or_pseudonym: Citizen | str, purpose_id: str) -> ConsentStatus:
        purpose = self._purpose(purpose_id)
        citizen = self._resolve(citizen_or_pseudonym)
        pseudonym = citizen.pseudonym if citizen is not None else str(citizen_or_pseudonym)
        return effective_status(purpose, self._newest(pseudonym, purpose.id), citizen, self._now())

    def overview(self, citizen: Citizen) -> list[ConsentStatus]:
        """Every purpose of the policy, in policy order; purposes not based on consent show their legal basis."""
        newest_seqs = (select(func.max(ConsentRecord.seq)).where(ConsentRecord.pseudonym == citizen.pseudonym)
                       .group_by(ConsentRecord.purpose_id))
        rows = self.session.exec(select(ConsentRecord).where(col(ConsentRecord.seq).in_(newest_seqs))).all()
        newest = {r.purpose_id: r for r in rows}
        now = self._now()
        return [effective_status(p, newest.get(p.id), citizen, now) for p in self.policy.purposes]

    def history(self, citizen: Citizen, purpose_id: str | None = None) -> list[ConsentRecord]:
        """The citizen's records, oldest first."""
        stmt = select(ConsentRecord).where(ConsentRecord.pseudonym == citizen.pseudonym)
        if purpose_id is not None:
            stmt = stmt.where(ConsentRecord.purpose_id == purpose_id)
        return list(self.session.exec(stmt.order_by(col(ConsentRecord.seq))).all())

    def get_record(self, citizen: Citizen, record_id: str) -> ConsentRecord:
        # Another citizen's record answers exactly like an unknown id, so ids cannot be probed.
        record = self.session.exec(select(ConsentRecord).where(
            ConsentRecord.id == record_id, ConsentRecord.pseudonym == citizen.pseudonym)).first()
        if record is None:
            raise NotFound("no such consent record")
        return record

    def receipt(self, record: ConsentRecord) -> dict[str, Any]:
        """The receipt payload of ``record``; sign it with :func:`broker.consent.receipts.sign_receipt`."""
        notice = self.session.get(Notice, record.notice_id)
        if notice is None:
            raise NotFound("the notice of this record is missing")
        return receipt_payload(record, notice)

    def valid_consent_pseudonyms(self, purpose: Purpose | str, at: datetime | None = None) -> Select:
        """One SQL statement selecting ``pseudonym`` of every citizen whose consent counts for ``purpose``.

        The newest record of the pair (read from :class:`~broker.consent.models.CurrentConsent`, the mirror the
        database keeps) must be ``given``, for the current version, still valid at ``at``, and the citizen
        neither restricted (Art 18) nor erased. Same conditions as :func:`effective_status`; the tests hold
        them equal. Columns of the newest record are reachable through :class:`CurrentConsent` in ``where``.
        """
        if isinstance(purpose, str):
            purpose = self._purpose(purpose)
        return select(CurrentConsent.pseudonym).where(*self.counting(purpose, NewestRecord.of_mirror(), at))

    def counting(self, purpose: Purpose, newest: NewestRecord, at: datetime | None = None) -> list[Any]:
        """The conditions of :meth:`valid_consent_pseudonyms` on ``newest``, wherever a copy of the newest
        record of each pair is kept (``consent_current``, or a vault summary's copy of it).

        Restricted and erased citizens are few: they are taken away through an index of their own rather than
        by joining every consent to the whole citizen table.
        """
        if not purpose.takes_consent or purpose.status != "active":
            return [false()]
        moment = _utc(at) if at is not None else self._now()
        blocked = select(Citizen.pseudonym).where(or_(col(Citizen.restricted_at).is_not(None),
                                                      col(Citizen.erased_at).is_not(None)))
        return [
            *([newest.purpose_id == purpose.id] if newest.purpose_id is not None else []),
            newest.state == S.given.value,
            newest.purpose_version == purpose.version,
            newest.valid_until > moment,
            not_among(self.session, newest.pseudonym, blocked),
        ]

    # -- changing -----------------------------------------------------------------------------------------
    def set_state(self, citizen: Citizen, purpose_id: str, state: ConsentState | str, *, explicit: bool = False,
                  method: str = "portal", language: str | None = None,
                  guardian: Citizen | None = None) -> ConsentRecord:
        """Give, refuse, pause or withdraw, one call each; answers the record that now holds."""
        try:
            target = ConsentState(state)
        except ValueError:
            raise InvalidRequest(f"unknown consent state {state!r}") from None
        if target not in CITIZEN_STATES:
            raise InvalidRequest(f"a citizen may set {', '.join(sorted(CITIZEN_STATES))}, not {target}")
        if method not in CITIZEN_METHODS:
            raise InvalidRequest(f"unknown collection method {method!r}")
        if language is not None and language not in LANGUAGES:
            raise InvalidRequest(f"unsupported language {language!r}")
        purpose = self._consent_purpose(purpose_id)
        now = self._now()
        subject = self._lock(citizen)
        stored = self.session.get(Citizen, guardian.id) if guardian is not None else None
        linked = stored is not None and Guardianships(self.session).linked(stored, subject, now.date())
        speaker = speaker_for(self.policy, purpose, subject, target, now.date(), named=guardian, stored=stored,
                              linked=linked)
        status = effective_status(purpose, self._newest(subject.pseudonym, purpose.id), subject, now)

        if target is S.given:
            if purpose.status != "active":
                raise ConsentRuleViolation(f"purpose {purpose.id} is {purpose.status}", rule="purpose-not-active")
            if subject.restricted_at is not None:
                raise ConsentRuleViolation("processing of this citizen's data is restricted (Art 18)",
                                           rule="citizen-restricted")
            if purpose.special_category and not explicit:
                raise ConsentRuleViolation("this purpose processes special-category data: explicit confirmation "
                                           "is required (Art 9(2)(a))", rule="explicit-confirmation-required")
        if target in IDEMPOTENT_STATES and status.state is target and status.record is not None:
            return status.record
        if not transition_allowed(status, target):
            raise ConsentRuleViolation(f"cannot go from {status.state} to {target}", rule="invalid-transition")

        previous = status.record
        if target in (S.withdrawn, S.paused) and previous is not None and previous.state in (S.given, S.paused):
            # Ends or pauses the consent the citizen gave, under the notice they agreed to, which may be an
            # earlier version (the current one then still awaits an answer). Not touching the current policy
            # text here means withdrawal works even while a notice is in dispute.
            version, notice = previous.purpose_version, self._notice(previous.notice_id)
        else:
            version, notice = purpose.version, ensure_notice(self.session, self.policy, purpose, now)
        return self._append(
            pseudonym=subject.pseudonym, purpose_id=purpose.id, version=version, notice=notice, state=target,
            now=now, valid_from=now,
            valid_until=add_months(now, purpose.consent_validity_months) if target is S.given else None,
            method="guardian" if speaker is not None else method,
            expressed_by="guardian" if speaker is not None else "self",
            guardian_pseudonym=speaker.pseudonym if speaker is not None else None,
            consent_type="explicit" if explicit else "expressed",
            language=language or (subject.locale if subject.locale in LANGUAGES else LANGUAGES[0]),
            previous=previous,
        )

    def revoke(self, citizen: Citizen, purpose_id: str) -> ConsentRecord:
        """The controller ends a given or paused consent (e.g. it was collected improperly)."""
        purpose = self._consent_purpose(purpose_id)
        now = self._now()
        subject = self._lock(citizen)
        status = effective_status(purpose, self._newest(subject.pseudonym, purpose.id), subject, now)
        if status.record is None or not transition_allowed(status, S.revoked):
            raise ConsentRuleViolation(f"cannot revoke from {status.state}", rule="invalid-transition")
        previous = status.record
        return self._append(
            pseudonym=subject.pseudonym, purpose_id=purpose.id, version=previous.purpose_version,
            notice=self._notice(previous.notice_id), state=S.revoked, now=now, valid_from=now, valid_until=None,
            method="controller", expressed_by="controller", guardian_pseudonym=None,
            consent_type=previous.consent_type, language=previous.language, previous=previous,
        )

    def expire_due(self, now: datetime | None = None) -> int:
        """Append ``expired`` after every newest ``given`` record whose validity has passed; idempotent.

        Counting never waits for this sweep (``valid_until`` is checked at read time); the sweep writes the
        end of each consent into the chain, dated at ``valid_until``, so receipts and histories show it.
        """
        moment = _utc(now) if now is not None else self._now()
        newest = (select(func.max(ConsentRecord.seq).label("seq"))
                  .group_by(ConsentRecord.pseudonym, ConsentRecord.purpose_id).subquery("newest"))
        due = self.session.exec(
            select(ConsentRecord).join(newest, ConsentRecord.seq == newest.c.seq)
            .where(ConsentRecord.state == S.given.value, col(ConsentRecord.valid_until) <= moment)
            # one lock order for every sweep, so two sweeps running at once cannot deadlock
            .order_by(col(ConsentRecord.pseudonym), col(ConsentRecord.purpose_id))).all()
        appended = 0
        for record in due:
            self.session.exec(select(Citizen).where(Citizen.pseudonym == record.pseudonym).with_for_update())
            latest = self._newest(record.pseudonym, record.purpose_id)
            if latest is None or latest.seq != record.seq:
                continue  # the citizen acted meanwhile (renewed or withdrew); nothing left to expire
            self._append(
                pseudonym=record.pseudonym, purpose_id=record.purpose_id, version=record.purpose_version,
                notice=self._notice(record.notice_id), state=S.expired, now=moment,
                valid_from=_utc(record.valid_until) if record.valid_until else moment, valid_until=None,
                method="system", expressed_by="system", guardian_pseudonym=None,
                consent_type=record.consent_type, language=record.language, previous=record,
            )
            appended += 1
        return appended

    # -- internals ----------------------------------------------------------------------------------------
    def _now(self) -> datetime:
        return _utc(self.clock.now())

    def _purpose(self, purpose_id: str) -> Purpose:
        purpose = self.policy.purpose(purpose_id)
        if purpose is None:
            raise NotFound(f"no purpose {purpose_id!r}")
        return purpose

    def _consent_purpose(self, purpose_id: str) -> Purpose:
        purpose = self._purpose(purpose_id)
        if not purpose.takes_consent:
            raise ConsentRuleViolation(f"purpose {purpose.id} rests on {purpose.legal_basis}, not on consent",
                                       rule="legal-basis-not-consent")
        return purpose

    def _resolve(self, citizen_or_pseudonym: Citizen | str) -> Citizen | None:
        if isinstance(citizen_or_pseudonym, Citizen):
            return citizen_or_pseudonym
        return self.session.exec(select(Citizen).where(Citizen.pseudonym == citizen_or_pseudonym)).first()

    def _lock(self, citizen: Citizen) -> Citizen:
        """The citizen's row, locked for this transaction (PostgreSQL; SQLite's BEGIN IMMEDIATE already
        serialises writers), so two concurrent changes of one citizen check transitions one after the other."""
        subject = self.session.exec(select(Citizen).where(Citizen.id == citizen.id).with_for_update()
                                    .execution_options(populate_existing=True)).first()
        if subject is None:
            raise NotFound("no such citizen")
        if subject.erased_at is not None:
            raise CitizenErased("this citizen's data has been erased")
        return subject

    def _newest(self, pseudonym: str, purpose_id: str) -> ConsentRecord | None:
        return self.session.exec(
            select(ConsentRecord).where(ConsentRecord.pseudonym == pseudonym, ConsentRecord.purpose_id == purpose_id)
            .order_by(col(ConsentRecord.seq).desc()).limit(1)).first()

    def _notice(self, notice_id: str) -> Notice:
        notice = self.session.get(Notice, notice_id)
        if notice is None:
            raise NotFound(f"notice {notice_id} is missing")
        return notice

    def _append(self, *, pseudonym: str, purpose_id: str, version: int, notice: Notice, state: ConsentState,
                now: datetime, valid_from: datetime, valid_until: datetime | None, method: str, expressed_by: str,
                guardian_pseudonym: str | None, consent_type: str, language: str,
                previous: ConsentRecord | None) -> ConsentRecord:
        record = ConsentRecord(
            id=str(uuid.uuid4()), schema_version=SCHEMA_VERSION, pseudonym=pseudonym, purpose_id=purpose_id,
            purpose_version=version, state=state.value, created_at=now, valid_from=valid_from,
            valid_until=valid_until, method=method, expressed_by=expressed_by,
            guardian_pseudonym=guardian_pseudonym, consent_type=consent_type, notice_id=notice.id,
            language=language, jurisdiction=self.policy.broker.jurisdiction,
            previous_id=previous.id if previous is not None else None, evidence="",
        )
        record.evidence = evidence_of(receipt_payload(record, notice))
        self.session.add(record)
        self.session.flush()
        # The change and its audit entry commit together or not at all.
        record_audit(self.session, AuditEvent(
            actor=_actor(expressed_by, pseudonym, guardian_pseudonym), action=actions.CONSENT_CHANGED,
            purpose=purpose_id, subject=pseudonym,
            details={"record_id": record.id, "state": state.value, "purpose_version": version, "method": method,
                     "expressed_by": expressed_by, "previous_record_id": record.previous_id,
                     "evidence": record.evidence}), now)
        return record


def _actor(expressed_by: str, pseudonym: str, guardian_pseudonym: str | None) -> str:
    if expressed_by == "guardian" and guardian_pseudonym is not None:
        return actions.citizen(guardian_pseudonym)
    if expressed_by == "self":
        return actions.citizen(pseudonym)
    return actions.CONTROLLER if expressed_by == "controller" else actions.SYSTEM
