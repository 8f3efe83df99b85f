"""The citizen's own JSON API (DESIGN §6), authenticated by the portal session cookie.

Every route acts on the citizen of the session and takes no citizen identifier from the request, so there is
no way to address another citizen. State-changing calls pass the CSRF middleware (``X-CSRF-Token``).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from broker.api.deps import RuntimeDep
from broker.api.portal import CitizenDep, UnitOfWork, clear_session_cookie, client_address, login_config
from broker.audit.accesses import Access, CitizenAccesses
from broker.consent.models import ConsentRecord
from broker.consent.states import ConsentStatus
from broker.identity.selfservice import CitizenSelfService, Profile, SelfErasure, SignedRecord
from broker.timeutil import as_utc


def no_store(response: Response) -> None:
    # Personal data: no shared or browser cache keeps a copy after logout.
    response.headers["Cache-Control"] = "no-store"


router = APIRouter(prefix="/v1/me", tags=["citizen"], dependencies=[Depends(no_store)])

PurposeId = Annotated[str, Path(max_length=64)]
RecordId = Annotated[str, Path(max_length=64)]


class ConsentChange(BaseModel):
    # Unknown fields are refused rather than ignored: a body naming some other citizen is an error, not a no-op.
    model_config = ConfigDict(extra="forbid")

    state: Literal["given", "refused", "paused", "withdrawn"]
    explicit: bool = Field(default=False, description="Explicit confirmation, required for special categories.")
    language: Literal["fr", "en"] | None = None


class ProfileChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Strict: a string or a boolean is an error, not a number; NaN and infinity are refused too.
    privacy_cap: float | None = Field(strict=True, allow_inf_nan=False, description=(
        "ε per year, at most the city's default; null goes back to the default."))


class ErasureRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str | None = Field(default=None, max_length=1024)


class RecordOut(BaseModel):
    id: str
    purpose_id: str
    purpose_version: int
    state: str
    created_at: datetime
    valid_from: datetime
    valid_until: datetime | None
    method: str
    expressed_by: str
    consent_type: str
    notice_id: str
    language: str
    jurisdiction: str
    previous_id: str | None
    evidence: str

    @classmethod
    def of(cls, record: ConsentRecord) -> RecordOut:
        body = record.model_dump(include=set(cls.model_fields))
        for key in ("created_at", "valid_from", "valid_until"):
            body[key] = as_utc(body[key]) if body[key] else None
        return cls(**body)


class SignedRecordOut(BaseModel):
    record: RecordOut
    receipt: str = Field(description="Compact JWS (ES256), verifiable against /.well-known/jwks.json.")

    @classmethod
    def of(cls, signed: SignedRecord) -> SignedRecordOut:
        return cls(record=RecordOut.of(signed.record), receipt=signed.receipt)


class ConsentOut(BaseModel):
    purpose_id: str
    purpose_version: int
    legal_basis: str
    takes_consent: bool
    state: str | None
    counts: bool
    reason: str | None
    valid_until: datetime | None
    record_id: str | None

    @classmethod
    def of(cls, status: ConsentStatus) -> ConsentOut:
        return cls(purpose_id=status.purpose_id, purpose_version=status.purpose_version,
                   legal_basis=status.legal_basis, takes_consent=status.takes_consent,
                   state=status.state.value if status.state else None, counts=status.counts,
                   reason=status.reason.value if status.reason else None, valid_until=status.valid_until,
                   record_id=status.record.id if status.record else None)


class ConsentsOut(BaseModel):
    consents: list[ConsentOut]


class MeOut(BaseModel):
    pseudonym: str
    email: str
    name: str
    birth_date: date | None
    age_band: str
    district: str | None
    locale: str
    privacy_cap: float
    privacy_cap_is_default: bool
    restricted: bool
    restricted_at: datetime | None


def self_service(runtime: RuntimeDep, principal: CitizenDep, session: UnitOfWork) -> CitizenSelfService:
    return CitizenSelfService(session, runtime.policy, runtime.secrets, runtime.clock, principal.citizen_id or "")


def _me_out(profile: Profile) -> MeOut:
    citizen = profile.citizen
    return MeOut(pseudonym=citizen.pseudonym, email=profile.identifiers.email, name=profile.identifiers.name,
                 birth_date=citizen.birth_date, age_band=profile.age_band, district=citizen.district,
                 locale=citizen.locale, privacy_cap=profile.privacy_cap,
                 privacy_cap_is_default=profile.privacy_cap_is_default,
                 restricted=citizen.restricted_at is not None,
                 restricted_at=as_utc(citizen.restricted_at) if citizen.restricted_at else None)


@router.get("")
def me(runtime: RuntimeDep, principal: CitizenDep, session: UnitOfWork) -> MeOut:
    return _me_out(self_service(runtime, principal, session).profile())


@router.patch("")
def change_me(change: ProfileChange, runtime: RuntimeDep, principal: CitizenDep, session: UnitOfWork) -> MeOut:
    """Set my personal privacy cap (ε per year), or null for the city's default."""
    return _me_out(self_service(runtime, principal, session).set_privacy_cap(change.privacy_cap))


@router.get("/consents")
def consents(runtime: RuntimeDep, principal: CitizenDep, session: UnitOfWork) -> ConsentsOut:
    statuses = self_service(runtime, principal, session).consents()
    return ConsentsOut(consents=[ConsentOut.of(s) for s in statuses])


@router.put("/consents/{purpose_id}")
def set_consent(purpose_id: PurposeId, change: ConsentChange, runtime: RuntimeDep, principal: CitizenDep,
                session: UnitOfWork) -> SignedRecordOut:
    signed = self_service(runtime, principal, session).set_consent(purpose_id, change.state, explicit=change.explicit,
                                                               language=change.language)
    return SignedRecordOut.of(signed)


@router.get("/receipts/{record_id}")
def receipt(record_id: RecordId, runtime: RuntimeDep, principal: CitizenDep,
            session: UnitOfWork) -> SignedRecordOut:
    return SignedRecordOut.of(self_service(runtime, principal, session).receipt(record_id))


class AccessOut(BaseModel):
    index: int = Field(description="The release's entry in the access log.")
    at: str
    purpose: str
    legal_basis: str
    service: str | None
    dataset: str | None
    statistic: str | None
    epsilon: float | None = Field(description="ε charged by the release.")
    query_id: str | None
    leaf_hash: str
    entry: dict[str, Any]
    inclusion_path: list[str] | None = Field(description="RFC 9162 proof against the checkpoint (hex); null "
                                                         "while the entry is newer than the checkpoint.")

    @classmethod
    def of(cls, access: Access) -> AccessOut:
        entry, details = access.entry, access.entry.get("details") or {}
        actor = str(entry.get("actor", ""))
        return cls(index=access.served.index, at=entry["at"], purpose=entry["purpose"], legal_basis=access.legal_basis,
                   service=details.get("service") or (actor.removeprefix("service:") if actor.startswith("service:")
                                                      else None),
                   dataset=entry.get("dataset"), statistic=details.get("statistic"),
                   epsilon=details.get("epsilon_charged", entry.get("epsilon")), query_id=details.get("query_id"),
                   leaf_hash=access.served.leaf_hash.hex(), entry=entry,
                   inclusion_path=None if access.inclusion_path is None else [h.hex() for h in access.inclusion_path])


class AccessesOut(BaseModel):
    checkpoint: str = Field(description="The signed checkpoint the proofs lead to (GET /v1/audit/checkpoint).")
    tree_size: int
    root_hash: str
    accesses: list[AccessOut]
    next_cursor: int | None


@router.get("/accesses")
def accesses(runtime: RuntimeDep, principal: CitizenDep, cursor: Annotated[int | None, Query(ge=0)] = None,
             limit: Annotated[int, Query(ge=1, le=500)] = 100) -> AccessesOut:
    """Every release that may have used my data, each with its audit index and inclusion proof."""
    found = CitizenAccesses(runtime.engine, runtime.policy, runtime.secrets, runtime.clock, runtime.reader).list(
        principal.citizen_id or "", cursor, limit)
    return AccessesOut(checkpoint=found.checkpoint.jws, tree_size=found.checkpoint.tree_size,
                       root_hash=found.checkpoint.root_hash, accesses=[AccessOut.of(a) for a in found.accesses],
                       next_cursor=found.next_cursor)


@router.get("/export")
def export(runtime: RuntimeDep, principal: CitizenDep, session: UnitOfWork) -> JSONResponse:
    document: dict[str, Any] = self_service(runtime, principal, session).export()
    return JSONResponse(jsonable_encoder(document), headers={
        "Content-Disposition": 'attachment; filename="consent-broker-export.json"',
        "Cache-Control": "no-store",
    })


@router.delete("", status_code=204)
def erase(request: Request, body: ErasureRequest, runtime: RuntimeDep, principal: CitizenDep) -> Response:
    """Art 17 erasure of the session's citizen, after re-entering the password."""
    SelfErasure(runtime.engine, runtime.policy, runtime.secrets, runtime.clock,
                login_config(runtime)).erase(principal, body.password, address=client_address(request))
    response = Response(status_code=204)
    clear_session_cookie(response, request)
    return response
