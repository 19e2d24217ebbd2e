"""Builders shared by the label tests: a typical manifest and re-signing of edited fields."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import cbor2

from crypto.signing import SigningKey
from custody.packages import Classification, Manifest, RouteStep
from labels.payload import encode_cose, manifest_to_cbor, wrap_text

T0_ISSUE_OFFSET = timedelta(minutes=10)


def typical_manifest(now: Any, **changes: Any) -> Manifest:
    """A typical package: 30 copies in 3 sealed bags, a 3-step route, Chinese destination."""
    base = Manifest(
        package_id="SX27-INT-0001",
        exam_id="SX-2027-INT",
        session="AM",
        position="P014",
        paper_id="P014-A",
        paper_commitment=hashlib.sha256(b"encrypted paper P014-A").digest(),
        copy_count=30,
        bag_size=10,
        seal_serials=("S0012345", "S0012346", "S0012347"),
        site="西安市第一考点",
        room="第3考场",
        opens_at=now + timedelta(days=5),
        closes_at=now + timedelta(days=5, hours=1),
        route=(
            RouteStep("print-qian", "PRT-01"),
            RouteStep("courier-sun", "ROAD"),
            RouteStep("custodian-zhou", "XA-01"),
        ),
        classification=Classification.TOP_SECRET,
        issued_at=now,
        expires_at=now + timedelta(days=35),
    )
    return dataclasses.replace(base, **changes)


def resign(manifest: Manifest, key: SigningKey, edit: Callable[[dict[int, Any]], None]) -> str:
    """A label whose CBOR fields were edited and then validly signed by ``key``."""
    fields = cbor2.loads(manifest_to_cbor(manifest))
    edit(fields)
    return wrap_text(encode_cose(cbor2.dumps(fields, canonical=True), key))
