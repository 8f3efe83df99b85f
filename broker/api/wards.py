"""The guardian's side of the citizen API: the minors in my care and their consents (GDPR Art 8).

A ward is addressed by ``ward_ref``, the id of the guardian's own guardianship link, never by the minor's id,
pseudonym or email: the reference means nothing outside this guardian's session, and a reference to someone
else's link answers exactly like an unknown one. Like ``/v1/me``, every route acts for the session's citizen.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field

from broker.api.deps import RuntimeDep
from broker.api.me import ConsentChange, ConsentOut, PurposeId, RecordId, SignedRecordOut, no_store, self_service
from broker.api.portal import CitizenDep, UnitOfWork
from broker.identity.selfservice import WardView
from broker.timeutil import as_utc

router = APIRouter(prefix="/v1/me/wards", tags=["citizen"], dependencies=[Depends(no_store)])

WardRef = Annotated[str, Path(max_length=36)]


class WardOut(BaseModel):
    ward_ref: str
    name: str
    age_band: str
    since: datetime
    consents: list[ConsentOut]
    decides_alone: list[str] = Field(description="Purposes whose minimum age the ward has reached: they "
                                                 "answer these themselves.")

    @classmethod
    def of(cls, ward: WardView) -> WardOut:
        return cls(ward_ref=ward.ward_ref, name=ward.name, age_band=ward.age_band, since=as_utc(ward.since),
                   consents=[ConsentOut.of(s) for s in ward.consents], decides_alone=sorted(ward.decides_alone))


class WardsOut(BaseModel):
    wards: list[WardOut]


@router.get("")
def wards(runtime: RuntimeDep, principal: CitizenDep, session: UnitOfWork) -> WardsOut:
    """The minors the city has recorded me as guardian of, while they are minors."""
    return WardsOut(wards=[WardOut.of(w) for w in self_service(runtime, principal, session).wards()])


@router.get("/{ward_ref}")
def ward(ward_ref: WardRef, runtime: RuntimeDep, principal: CitizenDep, session: UnitOfWork) -> WardOut:
    return WardOut.of(self_service(runtime, principal, session).ward(ward_ref))


@router.put("/{ward_ref}/consents/{purpose_id}")
def set_ward_consent(ward_ref: WardRef, purpose_id: PurposeId, change: ConsentChange, runtime: RuntimeDep,
                     principal: CitizenDep, session: UnitOfWork) -> SignedRecordOut:
    """Give, refuse, pause or withdraw for my ward; answers the record (expressed by a guardian) and its
    signed receipt, like ``PUT /v1/me/consents/{purpose_id}``."""
    signed = self_service(runtime, principal, session).set_ward_consent(
        ward_ref, purpose_id, change.state, explicit=change.explicit, language=change.language)
    return SignedRecordOut.of(signed)


@router.get("/{ward_ref}/receipts/{record_id}")
def ward_receipt(ward_ref: WardRef, record_id: RecordId, runtime: RuntimeDep, principal: CitizenDep,
                 session: UnitOfWork) -> SignedRecordOut:
    """The signed receipt of one of my ward's records, like ``GET /v1/me/receipts/{record_id}``; a record of
    anyone else answers like an unknown id, and an ended link like an unknown ward."""
    return SignedRecordOut.of(self_service(runtime, principal, session).ward_receipt(ward_ref, record_id))
