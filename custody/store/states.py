"""Mapping between the rules' ``PackageState`` and its cached JSON row (an edge)."""

from __future__ import annotations

import json
from typing import Any

from crypto.encoding import format_time, parse_time
from custody.rules import PackageState, Status


def state_to_json(state: PackageState) -> str:
    body: dict[str, Any] = {
        "package_id": state.package_id,
        "exam": state.exam,
        "position": state.position,
        "paper": state.paper,
        "copies": state.copies,
        "seals": list(state.seals),
        "window_start": format_time(state.window_start),
        "window_end": format_time(state.window_end),
        "route": list(state.route),
        "handover_witness": state.handover_witness,
        "status": state.status.value,
        "holder": state.holder,
        "route_pos": state.route_pos,
        "last_event": state.last_event,
        "last_time": format_time(state.last_time),
        "last_place": state.last_place,
        "frozen": state.frozen,
        "compromised": state.compromised,
        "distributed": state.distributed,
        "recovered": state.recovered,
    }
    return json.dumps(body, ensure_ascii=False, sort_keys=True)


def state_from_json(text: str) -> PackageState:
    b = json.loads(text)
    return PackageState(
        package_id=b["package_id"],
        exam=b["exam"],
        position=b["position"],
        paper=b["paper"],
        copies=b["copies"],
        seals=tuple(b["seals"]),
        window_start=parse_time(b["window_start"]),
        window_end=parse_time(b["window_end"]),
        route=tuple(b["route"]),
        handover_witness=b["handover_witness"],
        status=Status(b["status"]),
        holder=b["holder"],
        route_pos=b["route_pos"],
        last_event=b["last_event"],
        last_time=parse_time(b["last_time"]),
        last_place=b["last_place"],
        frozen=b["frozen"],
        compromised=b["compromised"],
        distributed=b["distributed"],
        recovered=b["recovered"],
    )
