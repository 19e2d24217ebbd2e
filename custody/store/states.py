"""Mapping between the rules' ``PackageState`` and its cached row (an edge).

The row is a cache the rules engine reads under the append lock; ``custody verify`` never
trusts it. It is a compact JSON array (times as Unix seconds) because it is rewritten for
every event: on the append path its cost matters.
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from custody.errors import LogStateError
from custody.rules import PackageState, Status

_VERSION = 2


def _ts(moment: datetime) -> int:
    return int(moment.timestamp())


def _dt(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def state_to_json(state: PackageState) -> str:
    # orjson writes the same compact JSON as json.dumps(ensure_ascii=False, separators=(",",
    # ":")) for these strings, integers and booleans, several times faster.
    return orjson.dumps(
        [
            _VERSION,
            state.package_id,
            state.exam,
            state.position,
            state.paper,
            state.copies,
            list(state.seals),
            _ts(state.window_start),
            _ts(state.window_end),
            list(state.route),
            state.handover_witness,
            state.status.value,
            state.holder,
            state.route_pos,
            state.last_event,
            _ts(state.last_time),
            state.last_place,
            state.frozen,
            state.compromised,
            state.distributed,
            state.recovered,
        ]
    ).decode("utf-8")


def state_from_json(text: str) -> PackageState:
    """The cached state, or ``LogStateError`` if the row is not one this release wrote."""
    try:
        return _state_from_json(text)
    except (ValueError, TypeError, KeyError, OverflowError, OSError) as e:
        raise LogStateError(
            f"a cached package state row is unreadable ({type(e).__name__}): the database was "
            "altered or damaged",
            hint="nothing was signed over it; restore the database from the standby or the last "
            "backup, then replay the receipts clients hold",
        ) from e


def _state_from_json(text: str) -> PackageState:
    (
        version,
        package_id,
        exam,
        position,
        paper,
        copies,
        seals,
        window_start,
        window_end,
        route,
        handover_witness,
        status,
        holder,
        route_pos,
        last_event,
        last_time,
        last_place,
        frozen,
        compromised,
        distributed,
        recovered,
    ) = orjson.loads(text)
    if version != _VERSION:
        raise ValueError(f"package state cache version {version}, expected {_VERSION}")
    return PackageState(
        package_id=package_id,
        exam=exam,
        position=position,
        paper=paper,
        copies=copies,
        seals=tuple(seals),
        window_start=_dt(window_start),
        window_end=_dt(window_end),
        route=tuple(route),
        handover_witness=handover_witness,
        status=Status(status),
        holder=holder,
        route_pos=route_pos,
        last_event=last_event,
        last_time=_dt(last_time),
        last_place=last_place,
        frozen=frozen,
        compromised=compromised,
        distributed=distributed,
        recovered=recovered,
    )


def state_as_dict(state: PackageState) -> dict[str, object]:
    """A readable view of a package's state (for the API and reports)."""
    return {
        "package_id": state.package_id,
        "exam": state.exam,
        "position": state.position,
        "paper": state.paper,
        "copies": state.copies,
        "seals": list(state.seals),
        "window": {"start": _iso(state.window_start), "end": _iso(state.window_end)},
        "route": list(state.route),
        "handover_witness": state.handover_witness,
        "status": state.status.value,
        "holder": state.holder,
        "next_holder": state.next_holder,
        "last_event": state.last_event,
        "last_time": _iso(state.last_time),
        "last_place": state.last_place,
        "frozen": state.frozen,
        "compromised": state.compromised,
        "distributed": state.distributed,
        "recovered": state.recovered,
    }


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
