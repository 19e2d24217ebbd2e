"""The identities' storage (an edge): the authority, certificates and revocations in, the
trust store out.

Rules:
- One style with the other repositories: SQLAlchemy Core, no ORM session;
  ``custody/identity.py`` holds no SQL.
- Only signed envelopes are stored (with the columns to find them); ``trust`` rebuilds the
  trust store from them, so every envelope is verified again on every load.
- ``add_records`` stores certificates and revocations in one transaction, in the order given
  (the database sees the first write first): all, or none. A row a unique key refuses (the
  key certified or revoked already, by another writer meanwhile) answers ``False``; any other
  refusal of the write is a ``StorageError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, Table, func, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import SQLModel

from crypto.dsse import Envelope, parse_envelope
from custody.errors import N_, StorageError
from custody.store import tables as _tables  # noqa: F401  (registers the tables)
from custody.store.db import READ_ONLY
from keys.model import Authority, Certificate, Revocation
from keys.trust import TrustStore

AUTHORITY: Table = SQLModel.metadata.tables["authority"]
CERTIFICATE: Table = SQLModel.metadata.tables["certificate"]
REVOCATION: Table = SQLModel.metadata.tables["revocation"]


@dataclass(frozen=True)
class NewCertificate:
    """A certificate to store, with the root-signed envelope that carries it."""

    certificate: Certificate
    envelope: Envelope


@dataclass(frozen=True)
class NewRevocation:
    """A revocation to store, with the root-signed envelope that carries it."""

    revocation: Revocation
    envelope: Envelope


def add_authority(engine: Engine, authority: Authority, envelope: Envelope) -> None:
    """Store the authority's root-signed envelope (once, when the home is made)."""
    with engine.begin() as conn:
        conn.execute(
            insert(AUTHORITY).values(
                id=authority.id, name=authority.name, envelope=envelope.to_bytes()
            )
        )


def trust(engine: Engine, *, pinned_root_id: str | None) -> TrustStore | None:
    """The trust store rebuilt (and so verified again) from every stored envelope; ``None``
    when no authority is stored."""
    with engine.connect().execution_options(**READ_ONLY) as conn:  # one snapshot (SQLite)
        authority = conn.execute(select(AUTHORITY.c.envelope).limit(1)).scalar_one_or_none()
        if authority is None:
            return None
        certs = [
            parse_envelope(bytes(e)) for e in conn.execute(select(CERTIFICATE.c.envelope)).scalars()
        ]
        revs = [
            parse_envelope(bytes(e)) for e in conn.execute(select(REVOCATION.c.envelope)).scalars()
        ]
    return TrustStore.build(
        parse_envelope(bytes(authority)), certs, revs, pinned_root_id=pinned_root_id
    )


def add_records(engine: Engine, records: Sequence[NewCertificate | NewRevocation]) -> bool:
    """Store ``records`` in one transaction, in order; ``False`` (nothing stored) when a
    unique key refuses one: its key is certified or revoked already."""
    try:
        with engine.begin() as conn:
            for record in records:
                if isinstance(record, NewCertificate):
                    cert = record.certificate
                    conn.execute(
                        insert(CERTIFICATE).values(
                            key_id=cert.key_id,
                            subject=cert.subject,
                            envelope=record.envelope.to_bytes(),
                        )
                    )
                else:
                    conn.execute(
                        insert(REVOCATION).values(
                            key_id=record.revocation.key_id, envelope=record.envelope.to_bytes()
                        )
                    )
    except IntegrityError:
        return False
    except OperationalError as e:
        raise StorageError(N_("the database refused the write: {orig}"), orig=e.orig) from e
    return True


def counts(engine: Engine) -> tuple[int, int]:
    """How many certificates and revocations are stored (a cheap sign the trust changed)."""
    with engine.connect().execution_options(**READ_ONLY) as conn:
        certs = conn.execute(select(func.count()).select_from(CERTIFICATE)).scalar_one()
        revs = conn.execute(select(func.count()).select_from(REVOCATION)).scalar_one()
    return int(certs), int(revs)
