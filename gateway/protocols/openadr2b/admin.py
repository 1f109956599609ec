"""The operator's view of the VTN's VENs (REST): who is registered, how they are reached, what they report; and
the two things only the VTN can start, a re-registration and the end of a registration."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request
from pydantic import BaseModel

from gateway.model import MessageKind, Override
from gateway.model.base import utc_now
from gateway.overrides.resolve import standing
from gateway.protocols.openadr2b.vtn import OadrRefusal, Vtn

router = APIRouter(prefix="/v1/openadr2b/vens", tags=["openadr2b"])

VenId = Annotated[str, Path(min_length=1, max_length=200)]


class StandingOverride(BaseModel):
    """An override of the VEN's party in force now or later, through whichever edge it came."""

    override_id: str
    subject_kind: str
    subject_id: str
    resource_id: str | None
    mode: str
    start: str
    end: str


class VenOut(BaseModel):
    ven_id: str
    party_id: str
    registered: bool
    registration_id: str | None
    ven_name: str | None
    pull: bool
    transport_address: str | None
    xml_signature: bool
    data_points: list[str]
    report_requests: list[str]
    overrides: list[StandingOverride]


def _vtn(request: Request) -> Vtn:
    return request.app.state.oadr_vtn  # type: ignore[no-any-return]


@router.get("", response_model=list[VenOut], summary="The VENs this VTN knows, registered or not")
async def list_vens(request: Request) -> list[VenOut]:
    vtn = _vtn(request)
    records = await asyncio.to_thread(vtn.directory.records)
    now = utc_now()

    def overrides_of(party_id: str) -> list[StandingOverride]:
        found = vtn.store.list(MessageKind.OVERRIDE, filters={"party_id": party_id}, limit=None)
        return [
            StandingOverride(
                override_id=o.id,
                subject_kind=o.subject.kind.value,
                subject_id=o.subject.id,
                resource_id=o.resource_id,
                mode=o.mode.value,
                start=o.span.start.isoformat(),
                end=o.span.end.isoformat(),
            )
            for o in standing([o for o in found if isinstance(o, Override)], now)
        ]

    standing_by_party = await asyncio.to_thread(lambda: {r.party_id: overrides_of(r.party_id) for r in records})
    return [
        VenOut(
            ven_id=r.ven_id,
            party_id=r.party_id,
            registered=r.registered,
            registration_id=r.registration_id,
            ven_name=r.ven_name,
            pull=r.http_pull_model,
            transport_address=r.transport_address,
            xml_signature=r.xml_signature,
            data_points=sorted(r.data_points),
            report_requests=sorted(r.report_requests),
            overrides=standing_by_party[r.party_id],
        )
        for r in sorted(records, key=lambda r: r.ven_id)
    ]


@router.post("/{ven_id}/reregister", status_code=202, summary="Ask a VEN to register again (on its next poll)")
async def reregister(request: Request, ven_id: VenId) -> dict[str, str]:
    try:
        await asyncio.to_thread(_vtn(request).request_reregistration, ven_id)
    except OadrRefusal as exc:
        raise HTTPException(404, exc.description) from exc
    return {"ven_id": ven_id, "queued": "oadrRequestReregistration"}


@router.post("/{ven_id}/cancel", status_code=202, summary="End a VEN's registration (it is told on its next poll)")
async def cancel(request: Request, ven_id: VenId) -> dict[str, str]:
    try:
        await asyncio.to_thread(_vtn(request).cancel_registration, ven_id)
    except OadrRefusal as exc:
        raise HTTPException(404, exc.description) from exc
    return {"ven_id": ven_id, "queued": "oadrCancelPartyRegistration"}
