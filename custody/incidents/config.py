"""A home's incident policy: ``incidents.json`` and the place registry, bytes in, ``Policy`` out.

``parse_places`` and ``parse_policy`` are pure (a ``FormatError`` for bad input); the one read
is ``default_places``, the registry shipped in the package (``places.json``), which
``policy_from_json`` lays under a home's own places.

``incidents.json`` (every key optional)::

    {"recipients": {"custodian" | "municipal" | "provincial" | "all":
                        [{"name": ..., "channel": "webhook" | "email", "address": ...}]},
     "backups": {"PAPER": "BACKUP-PAPER"},
     "places": {"西安 Xi'an": {"lat": 34.26, "lon": 108.94}},
     "max_speed_kmh": 120, "checkin_every": 60, "patrol_every": 30}   (minutes)

Rules: a webhook recipient's URL must be ``https://`` (``http://`` on loopback only); a place
needs numeric coordinates in range.
"""

from __future__ import annotations

import json
from datetime import timedelta
from importlib import resources
from typing import Any

from crypto.encoding import Fields, parse_json_object
from custody.errors import N_, FormatError
from custody.incidents.endpoints import check_webhook_url
from custody.incidents.policy import Place, Policy, Target


def parse_places(data: bytes) -> dict[str, Place]:
    """A place registry: ``{"place": {"lat": 34.26, "lon": 108.94}, ...}``."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise FormatError(N_("place registry: not JSON")) from e
    if not isinstance(obj, dict):
        raise FormatError(N_("place registry: must be an object of place -> {lat, lon}"))
    places = {}
    for name, spot in obj.items():
        if not isinstance(spot, dict):
            raise FormatError(
                N_("place registry: {name!r} must be an object with lat and lon"), name=name
            )
        lat, lon = spot.get("lat"), spot.get("lon")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (lat, lon)):
            raise FormatError(N_("place registry: {name!r} needs numeric lat and lon"), name=name)
        assert isinstance(lat, int | float)
        assert isinstance(lon, int | float)
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise FormatError(
                N_("place registry: {name!r} has coordinates out of range"), name=name
            )
        places[name] = Place(name, float(lat), float(lon))
    return places


def parse_policy(data: bytes | None, *, default_places: bytes) -> Policy:
    """``incidents.json`` (None: none in the home) over the ``default_places`` registry."""
    places = parse_places(default_places)
    if data is None:
        return Policy(places=places)
    f = Fields(parse_json_object(data, what="incidents.json"), what="incidents.json")
    if "places" in f.obj:
        places.update(parse_places(json.dumps(f.obj["places"]).encode()))
    recipients: dict[str, tuple[Target, ...]] = {}
    raw = f.obj.get("recipients", {})
    if not isinstance(raw, dict):
        raise FormatError(N_("incidents.json: recipients must be an object of level -> list"))
    for level, items in raw.items():
        if not isinstance(items, list):
            raise FormatError(N_("incidents.json: recipients.{level} must be a list"), level=level)
        targets = []
        for item in items:
            if not isinstance(item, dict):
                raise FormatError(
                    N_("incidents.json: recipients.{level} holds a non-object"), level=level
                )
            t = Fields(item, what=f"incidents.json recipients.{level}")
            name, channel, address = t.text("name"), t.text("channel"), t.text("address")
            if channel not in {"webhook", "email"}:
                raise FormatError(
                    N_("incidents.json: channel {channel!r} is not webhook or email"),
                    channel=channel,
                )
            if channel == "webhook":
                check_webhook_url(address, what=f"incidents.json: recipient {name!r}")
            targets.append(Target(name, channel, address))
        recipients[level] = tuple(targets)
    backups = f.obj.get("backups", {})
    if not isinstance(backups, dict) or not all(isinstance(v, str) for v in backups.values()):
        raise FormatError(N_("incidents.json: backups must map paper -> backup paper"))
    kw: dict[str, Any] = {}
    if "max_speed_kmh" in f.obj:
        kw["max_speed_kmh"] = float(f.obj["max_speed_kmh"])
    for key in ("checkin_every", "patrol_every"):
        if key in f.obj:
            kw[key] = timedelta(minutes=float(f.obj[f"{key}"]))
    return Policy(places=places, recipients=recipients, backups=dict(backups), **kw)


def default_places() -> bytes:
    """The place registry shipped in the package."""
    return resources.files("custody.incidents").joinpath("places.json").read_bytes()


def policy_from_json(data: bytes | None) -> Policy:
    """``incidents.json`` in the home: recipients, backups, limits (all optional).

    A webhook recipient's URL must be ``https://`` (``http://`` on loopback only)."""
    return parse_policy(data, default_places=default_places())


__all__ = ["default_places", "parse_places", "parse_policy", "policy_from_json"]
