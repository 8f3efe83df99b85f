"""Ingest: batches of records from a data provider into the vault (DESIGN §6, ``POST /v1/ingest/{dataset}``).

A batch is ``{"batch_id": "...", "records": [{"citizen_id": "<uuid>", "<field>": value, ...}, ...]}`` with
1 to :data:`MAX_RECORDS` records. It is stored whole or not at all:

* every record is checked against the dataset's declaration: no unknown field, each value of its declared
  type, the time field present, the citizen known and not erased. All the errors are reported together, each
  with the record's index (from 0) and the field, and never with the value or the citizen id: both are
  personal data, and an error report travels through logs and tickets.
* values are stored as given, out-of-bounds ones included: the bounds are for the query's clamping, and a
  value clamped at ingest could never be corrected later. Numbers become fixed-point integers
  (value × 10^scale) by exact decimal arithmetic, so that SQL sums are exact; a number with more decimal
  places than the scale is refused rather than rounded.
* a batch id is an idempotency key per (client, dataset): the same batch again is answered with the original
  result and stores nothing; a different batch under a used id is a conflict. Only stored batches take an id,
  so a refused batch may be corrected and sent again under the same id.
* every batch read is audited, accepted or refused, in the transaction that stores it (or stores nothing),
  with the batch id and the record count only.

Fields other than the time field may be null or absent (a sensor may miss one measure on a day); they are
stored as NULL, which queries skip. Records are written under the citizen's pseudonym, never their id.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import MetaData
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from broker.audit import actions
from broker.audit.log import AuditEvent, record
from broker.db import bulk_insert
from broker.errors import BrokerError, Conflict, Forbidden, InvalidRequest, NotFound
from broker.identity.models import Citizen
from broker.keys import Secrets
from broker.policy.schema import Dataset, Field, FieldType, Policy, Service
from broker.vault.models import IngestBatch
from broker.vault.tables import build_table

MAX_RECORDS = 10_000
#: Per-record errors listed in one answer; past this the answer gives the total only.
MAX_ERRORS_LISTED = 1_000
CITIZEN_KEY = "citizen_id"
BATCH_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_FIELD_NAME = re.compile(r"^[a-z][a-z0-9_-]{1,62}$")
# RFC 3339 §5.6 date-time, with at most microseconds (the databases keep no more; finer would be rounded).
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([Zz]|[+-]\d{2}:\d{2})$")
_DECIMAL_TEXT = re.compile(r"^-?\d{1,30}(\.\d{1,30})?$")
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1
#: Citizen ids per ``IN (...)`` lookup: well under SQLite's bound-parameter limit.
LOOKUP_CHUNK = 1_000


# -- refusals -----------------------------------------------------------------------------------------------
class UnknownDataset(NotFound):
    code, title = "unknown-dataset", "Unknown dataset"


class IngestNotAllowed(Forbidden):
    code, title = "ingest-not-allowed", "Ingest not allowed"


class MalformedBatch(InvalidRequest):
    code, title = "invalid-batch", "Invalid batch"


class BatchTooLarge(BrokerError):
    code, status, title = "batch-too-large", 413, "Batch too large"


class InvalidRecords(InvalidRequest):
    code, title = "invalid-records", "Invalid records"


class BatchConflict(Conflict):
    code, title = "batch-conflict", "Batch id already used"


# -- exact fixed point --------------------------------------------------------------------------------------
class FixedPointError(ValueError):
    pass


class TooManyPlaces(FixedPointError):
    pass


class OutOfRange(FixedPointError):
    pass


def to_fixed(value: int | Decimal, scale: int) -> int:
    """``value × 10^scale`` as an integer, exactly, on integer arithmetic only (no float, no decimal context).

    Raises :class:`TooManyPlaces` when the value has more than ``scale`` decimal places (trailing zeros do not
    count: 1.230 at scale 2 is 123), :class:`OutOfRange` when the result does not fit a ``BIGINT``.
    """
    sign, digits, exponent = Decimal(value).as_tuple()
    if not isinstance(exponent, int):
        raise FixedPointError("not a finite number")
    coefficient = int("".join(map(str, digits)) or "0")
    if coefficient == 0:
        return 0
    shift = exponent + scale
    if shift >= 0:
        # Here coefficient >= 10^(len(digits) - 1); checking the size first keeps 1e999999999 from being built.
        if len(digits) + shift > 19:
            raise OutOfRange("too large")
        result = coefficient * 10**shift
    else:
        if -shift > len(digits):  # a non-zero coefficient is then not a multiple of 10^-shift
            raise TooManyPlaces("too many decimal places")
        result, remainder = divmod(coefficient, 10**-shift)
        if remainder:
            raise TooManyPlaces("too many decimal places")
    result = -result if sign else result
    if not BIGINT_MIN <= result <= BIGINT_MAX:
        raise OutOfRange("too large")
    return result


def from_fixed(value: int, scale: int) -> Decimal:
    """The exact decimal a fixed-point integer stands for."""
    return Decimal(value).scaleb(-scale)


# -- parsing ------------------------------------------------------------------------------------------------
def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_body(raw: bytes) -> Any:
    """JSON with every fractional number as a :class:`Decimal`, so no digit is lost to a float on the way."""
    try:
        return json.loads(raw, parse_float=Decimal, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise MalformedBatch("the body is not valid JSON") from exc


def _decimal_key(value: Any) -> str:
    """A fractional number by its value (12.30 as 12.3), for :func:`content_hash`; never expands an exponent.

    The NUL prefix keeps it apart from every string a stored batch can hold (no valid value contains NUL).
    """
    if not isinstance(value, Decimal):
        raise TypeError(type(value).__name__)
    sign, digits, exponent = value.as_tuple()
    text = "".join(map(str, digits)).rstrip("0")
    if not text:
        return "\x000"
    assert isinstance(exponent, int)  # parse_body admits no NaN or Infinity
    return f"\x00{'-' if sign else ''}{text}e{exponent + len(digits) - len(text)}"


def content_hash(records: list[Any], secrets: Secrets) -> str:
    """A keyed hash of the records, for telling a retried batch from a different one under the same id.

    Key order and spacing do not count, nor trailing zeros of a fractional number; integers count as written
    (10 and 10.0 differ). Keyed with the pepper because the records are personal data: a plain hash of a
    small batch could be confirmed by anyone who can guess its citizen and values.
    """
    try:
        text = json.dumps(records, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_decimal_key)
    except RecursionError as exc:  # nesting json.loads still took, but no record can be
        raise MalformedBatch("the batch nests too deeply") from exc
    return hmac.new(secrets.pepper, b"ingest-batch:" + text.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Batch:
    batch_id: str
    records: list[Any]


def read_batch(body: Any) -> Batch:
    """The envelope of a batch; records are checked one by one later, by :class:`RecordValidator`."""
    if not isinstance(body, dict):
        raise MalformedBatch("the body must be a JSON object with batch_id and records")
    problems = []
    unknown = sorted(k for k in body if k not in ("batch_id", "records"))
    if unknown:
        problems.append({"location": "body", "message": "only batch_id and records are accepted"})
    batch_id = body.get("batch_id")
    if not isinstance(batch_id, str) or not BATCH_ID.match(batch_id):
        problems.append({"location": "batch_id", "message": "required: 1 to 128 characters of A-Z a-z 0-9 . _ : - "
                                                            "starting with a letter or digit"})
    records = body.get("records")
    if not isinstance(records, list) or not records:
        problems.append({"location": "records", "message": "required: a list of 1 to 10000 records"})
    if problems:
        raise MalformedBatch("the batch does not have the expected shape", errors=problems)
    assert isinstance(batch_id, str) and isinstance(records, list)
    if len(records) > MAX_RECORDS:
        raise BatchTooLarge(f"a batch holds at most {MAX_RECORDS} records; split it and send each part under "
                            "its own batch id")
    return Batch(batch_id, records)


# -- per-record validation ----------------------------------------------------------------------------------
class _Invalid(Exception):
    def __init__(self, message: str) -> None:
        self.message = message


@dataclass(frozen=True)
class RecordError:
    record: int
    field: str | None
    message: str


def _timestamp(value: Any) -> datetime:
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise _Invalid("must be an RFC 3339 date-time with a time zone offset, at most microseconds")
    try:
        # SQLite keeps no offset, so everything is stored in UTC.
        return datetime.fromisoformat(value.upper().replace("T", " ")).astimezone(UTC)
    except (ValueError, OverflowError) as exc:  # e.g. 2026-02-30, or year 1 moved before year 1 by its offset
        raise _Invalid("not a valid date-time") from exc


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid("must be a JSON integer")
    if not BIGINT_MIN <= value <= BIGINT_MAX:
        raise _Invalid("outside the range the vault can store")
    return value


def _decimal(scale: int) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        if isinstance(value, str):
            if not _DECIMAL_TEXT.match(value):
                raise _Invalid("must be a decimal number")
            value = Decimal(value)
        elif isinstance(value, bool) or not isinstance(value, int | Decimal):
            raise _Invalid("must be a decimal number")
        try:
            return to_fixed(value, scale)
        except TooManyPlaces as exc:
            raise _Invalid(f"has more than {scale} decimal places") from exc
        except FixedPointError as exc:
            raise _Invalid("outside the range the vault can store") from exc

    return convert


def _category(allowed: frozenset[str]) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if not isinstance(value, str) or value not in allowed:
            raise _Invalid("not one of the declared categories")
        return value

    return convert


def _converter(declared: Field, domains: dict[str, list[str]]) -> Callable[[Any], Any]:
    if declared.type is FieldType.timestamp:
        return _timestamp
    if declared.type is FieldType.integer:
        return _integer
    if declared.type is FieldType.decimal:
        return _decimal(declared.scale)
    return _category(frozenset(declared.categories or domains.get(declared.domain or "", [])))


@dataclass
class CheckedRecords:
    """The rows to write (without pseudonym), the citizen id of each, and every error found."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    citizens: list[str | None] = field(default_factory=list)
    errors: list[RecordError] = field(default_factory=list)


class RecordValidator:
    """Checks records against one dataset's declaration; knows nothing of citizens beyond the id's shape."""

    def __init__(self, dataset: Dataset, domains: dict[str, list[str]]) -> None:
        self.dataset = dataset
        self.converters = {f.name: _converter(f, domains) for f in dataset.fields}
        self.empty = dict.fromkeys(self.converters)

    def check(self, records: list[Any]) -> CheckedRecords:
        out = CheckedRecords()
        time_field, converters = self.dataset.time_field, self.converters
        for index, raw in enumerate(records):
            row = dict(self.empty)
            out.rows.append(row)
            if not isinstance(raw, dict):
                out.citizens.append(None)
                out.errors.append(RecordError(index, None, "a record must be a JSON object"))
                continue
            citizen = raw.get(CITIZEN_KEY)
            if citizen is None:
                out.errors.append(RecordError(index, CITIZEN_KEY, "required"))
            elif not isinstance(citizen, str) or not _UUID.match(citizen):
                out.errors.append(RecordError(index, CITIZEN_KEY, "must be a UUID"))
                citizen = None
            else:
                citizen = citizen.lower()
            out.citizens.append(citizen)
            for key, value in raw.items():
                if key == CITIZEN_KEY:
                    continue
                convert = converters.get(key)
                if convert is None:
                    # A key could itself be personal data sent by mistake; only a name-shaped one is repeated.
                    shown = key if _FIELD_NAME.match(key) else None
                    out.errors.append(RecordError(index, shown, "not a field of this dataset"))
                elif value is not None:
                    try:
                        row[key] = convert(value)
                    except _Invalid as exc:
                        out.errors.append(RecordError(index, key, exc.message))
            if raw.get(time_field) is None:
                out.errors.append(RecordError(index, time_field, "required"))
        return out


# -- the service --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IngestReceipt:
    batch_id: str
    dataset: str
    accepted: int
    #: False when the batch had already been stored (an idempotent replay).
    created: bool


@dataclass(frozen=True)
class IngestOutcome:
    """Exactly one of receipt or refusal. A refusal is returned, not raised, so that the caller commits the
    audit entry that records it."""

    receipt: IngestReceipt | None = None
    refusal: BrokerError | None = None


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class IngestService:
    def __init__(self, session: Session, policy: Policy, secrets: Secrets) -> None:
        self.session = session
        self.policy = policy
        self.secrets = secrets

    def ingest(self, *, client_id: str, service: Service, dataset_id: str, body: bytes,
               now: datetime) -> IngestOutcome:
        """Store one batch for ``service`` (the caller has checked its ``ingest`` role), or refuse it whole."""
        facts: dict[str, Any] = {"batch_id": None, "records": None}
        try:
            receipt = self._ingest(client_id, service, dataset_id, body, now, facts)
        except BrokerError as refusal:
            self._audit(service, dataset_id, facts, now, refusal=refusal)
            return IngestOutcome(refusal=refusal)
        self._audit(service, dataset_id, facts, now, replay=not receipt.created)
        return IngestOutcome(receipt=receipt)

    def _ingest(self, client_id: str, service: Service, dataset_id: str, body: bytes, now: datetime,
                facts: dict[str, Any]) -> IngestReceipt:
        dataset = self.policy.dataset(dataset_id)
        if dataset is None:
            raise UnknownDataset(f"no dataset {dataset_id!r} in the policy")
        if service.kind != "provider" or dataset.id not in service.ingest:
            raise IngestNotAllowed(f"the policy does not let {service.id!r} write to {dataset.id!r}")
        batch = read_batch(parse_body(body))
        facts.update(batch_id=batch.batch_id, records=len(batch.records))
        digest = content_hash(batch.records, self.secrets)
        stored = self._stored(client_id, dataset.id, batch.batch_id)
        if stored is not None:
            return self._replay(stored, digest)

        checked = RecordValidator(dataset, self.policy.broker.domains).check(batch.records)
        pseudonyms = self._pseudonyms(checked)
        if checked.errors:
            raise self._invalid(checked.errors, len(batch.records))

        row = IngestBatch(id=str(uuid.uuid4()), client_id=client_id, dataset=dataset.id, batch_id=batch.batch_id,
                          content_hash=digest, record_count=len(batch.records), received_at=now)
        try:
            with self.session.begin_nested():
                self.session.add(row)
                self.session.flush()
        except IntegrityError:
            # A concurrent request stored this batch id first (its transaction has committed by now).
            stored = self._stored(client_id, dataset.id, batch.batch_id)
            if stored is None:
                raise
            return self._replay(stored, digest)

        for values, citizen in zip(checked.rows, checked.citizens, strict=True):
            values["pseudonym"] = pseudonyms[citizen] if citizen else None
            values["batch_id"] = row.id
        table = build_table(dataset, MetaData())
        bulk_insert(self.session.connection(), table, checked.rows)
        return IngestReceipt(batch.batch_id, dataset.id, len(checked.rows), created=True)

    def _stored(self, client_id: str, dataset_id: str, batch_id: str) -> IngestBatch | None:
        return self.session.exec(select(IngestBatch).where(
            IngestBatch.client_id == client_id, IngestBatch.dataset == dataset_id,
            IngestBatch.batch_id == batch_id)).first()

    @staticmethod
    def _replay(stored: IngestBatch, digest: str) -> IngestReceipt:
        if not hmac.compare_digest(stored.content_hash, digest):
            raise BatchConflict("this batch id was already used for a different batch; use a new batch id")
        return IngestReceipt(stored.batch_id, stored.dataset, stored.record_count, created=False)

    def _pseudonyms(self, checked: CheckedRecords) -> dict[str, str]:
        """Pseudonyms of the batch's citizens, in one query per chunk; unknown and erased ones become errors."""
        wanted = sorted({c for c in checked.citizens if c})
        found: dict[str, tuple[str, datetime | None]] = {}
        for chunk in _chunks(wanted, LOOKUP_CHUNK):
            query = select(Citizen.id, Citizen.pseudonym, Citizen.erased_at).where(col(Citizen.id).in_(chunk))
            for citizen_id, pseudonym, erased_at in self.session.exec(query):
                found[citizen_id] = (pseudonym, erased_at)
        pseudonyms = {}
        for index, citizen in enumerate(checked.citizens):
            if not citizen:
                continue
            known = found.get(citizen)
            if known is None:
                checked.errors.append(RecordError(index, CITIZEN_KEY, "no such citizen"))
            elif known[1] is not None:
                # Erasure (Art 17) is final: the provider must stop sending this citizen's data.
                checked.errors.append(RecordError(index, CITIZEN_KEY, "this citizen's data has been erased"))
            else:
                # The stored pseudonym is Secrets.pseudonym(id), the one consent records are keyed by.
                pseudonyms[citizen] = known[0]
        return pseudonyms

    @staticmethod
    def _invalid(errors: list[RecordError], total: int) -> InvalidRecords:
        errors.sort(key=lambda e: e.record)
        bad = len({e.record for e in errors})
        listed = [{"record": e.record, "field": e.field, "message": e.message} for e in errors[:MAX_ERRORS_LISTED]]
        return InvalidRecords(f"{bad} of {total} records are invalid; nothing of this batch was stored",
                              errors=listed, error_count=len(errors), invalid_records=bad)

    def _audit(self, service: Service, dataset_id: str, facts: dict[str, Any], now: datetime, *,
               refusal: BrokerError | None = None, replay: bool = False) -> None:
        # The batch id and the count only: the records' citizens and values never enter the log.
        details = {k: v for k, v in facts.items() if v is not None}
        if replay:
            details["replay"] = True
        if isinstance(refusal, InvalidRecords):
            details["invalid_records"] = refusal.extra["invalid_records"]
        record(self.session, AuditEvent(
            actor=actions.service(service.id), action=actions.INGEST, dataset=dataset_id[:64],
            decision="deny" if refusal else "allow", reasons=[refusal.code] if refusal else [],
            details=details), now)
