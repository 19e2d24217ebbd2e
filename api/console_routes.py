"""What the secrecy officer's console reads besides incidents: the witness policy its
checkpoint check needs.

Rules:
- ``GET /v1/witnesses`` is public, like the checkpoints it serves to check: the authority's
  ``witnesses.json`` as k of n verifier keys (name and C2SP ``vkey``, no addresses). 404
  ``not_found`` when the authority lists no witnesses. A page counts a checkpoint's
  cosignature lines only under these keys, and says that the keys are the server's word.
- ``GET /v1/time-zone`` is public: the zone the authority's people read times in
  (``time_zone`` in the home's custody.json, else Asia/Shanghai), as the CLI shows them.
"""

from __future__ import annotations

from typing import Any, cast

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from api.backend import Backend
from api.schemas import ErrorBody
from custody.errors import N_, NotFoundError
from custody.i18n import DEFAULT_TIME_ZONE

router = APIRouter()


class WitnessOut(BaseModel):
    name: str = Field(description="The witness's key name, as its cosignature lines carry it.")
    vkey: str = Field(description="C2SP verifier key: name+hex(key hash)+base64(0x04 || key).")


class WitnessesOut(BaseModel):
    quorum: int = Field(description="How many listed witnesses must cosign a checkpoint.")
    witnesses: list[WitnessOut]


@router.get(
    "/v1/witnesses",
    response_model=WitnessesOut,
    tags=["log"],
    responses={404: {"model": ErrorBody}},
)
def witnesses(request: Request) -> dict[str, Any]:
    """The authority's witness policy (k of n cosignature keys) from its witnesses.json."""
    service = cast(Backend, request.app.state.backend)
    policy = service.home.witness_policy()
    if policy is None:
        raise NotFoundError(
            N_("the authority lists no witnesses"),
            hint=N_(
                "the operator writes witnesses.json in the home (docs/formats.md, 'Small files')"
            ),
        )
    return {
        "quorum": policy.quorum,
        "witnesses": [{"name": w.name, "vkey": w.vkey()} for w in policy.witnesses],
    }


class TimeZoneOut(BaseModel):
    time_zone: str = Field(description="An IANA zone name, e.g. Asia/Shanghai.")


@router.get("/v1/time-zone", response_model=TimeZoneOut, tags=["service"])
def time_zone(request: Request) -> dict[str, str]:
    """The zone the authority's people read times in (times stored and sent stay UTC)."""
    service = cast(Backend, request.app.state.backend)
    zone = service.home.config.obj.get("time_zone") if service.home.exists() else None
    return {"time_zone": zone if isinstance(zone, str) and zone else DEFAULT_TIME_ZONE}
