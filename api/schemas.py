"""Response bodies of the HTTP API (pydantic, for the OpenAPI schema only).

These models describe what the routes send; they hold no rule. The request bodies are parsed
by the project's own strict parsers (``parse_envelope``, ``verify_label``, ``scan_label``), so
their OpenAPI descriptions are written out by hand below.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    error: str = Field(description="Stable error code (the CustodyError class's `code`).")
    message: str = Field(description="What is wrong, for a person (English, as logged).")
    hint: str | None = Field(default=None, description="What to do about it, when known.")
    message_zh: str | None = Field(
        default=None,
        description="`message` in Simplified Chinese; present unless Accept-Language ranks "
        "English above Chinese.",
    )
    hint_zh: str | None = Field(default=None, description="`hint` in Simplified Chinese.")


class Health(BaseModel):
    ok: bool
    authority_id: str
    log_origin: str
    log_size: int
    writable: bool = Field(description="False when started without the log key (read-only).")


class FindingOut(BaseModel):
    kind: str
    package: str
    detail: str


class ReceiptOut(BaseModel):
    index: int = Field(description="The event's index in the log.")
    statement_id: str
    received: str = Field(description="When the log received it (its clock; part of the leaf).")
    checkpoint: str = Field(description="Signed checkpoint (C2SP signed note) covering it.")
    findings: list[FindingOut]
    duplicate: bool = Field(description="True when the event was already in the log.")


class BatchAccepted(ReceiptOut):
    position: int = Field(description="Position of the envelope in the submitted list.")
    status: int = Field(description="201 appended now, 200 already in the log.")


class BatchRefused(ErrorBody):
    position: int
    status: int = Field(description="The status a single submission of it would have had.")


class BatchResult(BaseModel):
    accepted: list[BatchAccepted]
    refused: list[BatchRefused]
    system: list[ReceiptOut] = Field(
        description="Statements the service appended itself in the same transaction."
    )


class EntryOut(BaseModel):
    index: int
    statement_id: str
    received: str = Field(description="When the log received it (the log's clock).")
    envelope: dict[str, Any] = Field(description="The DSSE envelope as submitted.")
    leaf: str = Field(description="The leaf exactly as hashed into the tree (base64).")


class InclusionProof(BaseModel):
    index: int
    tree_size: int
    proof: list[str] = Field(description="RFC 9162 audit path, standard base64 hashes.")


class ConsistencyProof(BaseModel):
    old_size: int
    new_size: int
    proof: list[str] = Field(description="RFC 9162 consistency path, standard base64 hashes.")


class CosignatureOut(BaseModel):
    size: int = Field(description="The tree size of the checkpoint cosigned.")
    witness: str = Field(description="The witness's key name (from witnesses.json).")
    cosigned_at: int = Field(description="The cosignature's time, POSIX seconds.")
    line: str = Field(description="The cosignature/v1 line the log holds.")
    duplicate: bool = Field(description="The log held this witness's cosignature already.")


class CosignaturesOut(BaseModel):
    cosignatures: list[CosignatureOut]


class PackageOut(BaseModel):
    package_id: str
    state: dict[str, Any] = Field(description="The package's state after its latest event.")
    history: list[int] = Field(description="Log indexes of every event naming the package.")


class SealedBy(BaseModel):
    subject: str
    name: str
    roles: list[str]
    key_id: str


class VerifiedLabelOut(BaseModel):
    ok: bool
    manifest: dict[str, Any]
    sealed_by: SealedBy
    authority_id: str
    checked_at: str
    label: str | None = Field(default=None, description="The label text read (scan only).")


ENVELOPE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["payloadType", "payload", "signatures"],
    "additionalProperties": False,
    "properties": {
        "payloadType": {"type": "string", "example": "application/vnd.custody.event.v1+json"},
        "payload": {"type": "string", "format": "byte"},
        "signatures": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["sig"],
                "additionalProperties": False,
                "properties": {
                    "keyid": {"type": "string"},
                    "sig": {"type": "string", "format": "byte"},
                },
            },
        },
    },
}

EVENTS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"oneOf": [ENVELOPE_SCHEMA, {"type": "array", "items": ENVELOPE_SCHEMA}]}
            }
        },
    }
}

LABEL_TEXT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"text/plain": {"schema": {"type": "string", "example": "CP1:..."}}},
    }
}

COSIGNATURE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "text/plain": {
                "schema": {
                    "type": "string",
                    "example": "custody/ab12...\n4\nq7x...=\n\n— custody/ab12... ...\n"
                    "— witness.example/w1 3xwKNQ...\n",
                }
            }
        },
    }
}

IMAGE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


# -- access (issue 12) -------------------------------------------------------------------------

LOGIN_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": ENVELOPE_SCHEMA}},
    }
}


class ChallengeOut(BaseModel):
    challenge: str
    origin: str
    expires_at: str
    payload_type: str


class SessionOut(BaseModel):
    token: str
    token_type: str
    expires_at: str
    subject: str
    key_id: str
    roles: list[str]


class AccessRecordOut(BaseModel):
    index: int
    at: str
    who: str
    key_id: str
    roles: list[str]
    route: str
    objects: list[str]


class AccessRecordsOut(BaseModel):
    size: int
    records: list[AccessRecordOut]
