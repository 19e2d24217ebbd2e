"""The access log's records and their offline check, pure (no database): the record format,
the log's origin, its root, and ``verify_access`` over exported lines and their checkpoint.

``custody.access_log`` (the log itself, in the database) and ``custody.audit`` (``custody
verify``) both use them; ``custody verify`` so checks an exported access log without loading
the database layer. Record and rules: see ``custody/access_log.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from crypto import merkle
from crypto.encoding import Fields, canonical_json, parse_json_object
from crypto.note import NoteVerifier, open_checkpoint
from custody.errors import N_, CustodyError, FormatError, Phrase, Said
from keys.model import Authority

ACCESS_TYPE = "custody.access.v1"
ACCESS_FILE = "access.jsonl"
ACCESS_CHECKPOINT_FILE = "access-checkpoint.note"
GENESIS = "0" * 64


def access_origin(authority: Authority) -> str:
    return authority.log_origin + "/access"


def access_root(leaves: Iterable[bytes]) -> tuple[int, bytes]:
    """RFC 9162 root of a stream of leaves, in O(log n) memory."""
    stack: list[tuple[int, bytes]] = []
    count = 0
    for leaf in leaves:
        count += 1
        level, h = 0, merkle.leaf_hash(leaf)
        while stack and stack[-1][0] == level:
            _, left = stack.pop()
            h = merkle.node_hash(left, h)
            level += 1
        stack.append((level, h))
    if not stack:
        return 0, merkle.EMPTY_ROOT
    h = stack[-1][1]
    for _, left in reversed(stack[:-1]):
        h = merkle.node_hash(left, h)
    return count, h


@dataclass(frozen=True)
class AccessEntry:
    index: int
    at: str
    who: str
    key_id: str
    roles: tuple[str, ...]
    route: str
    objects: tuple[str, ...]
    prev: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "at": self.at,
            "who": self.who,
            "key_id": self.key_id,
            "roles": list(self.roles),
            "route": self.route,
            "objects": list(self.objects),
        }


def parse_access_leaf(index: int, leaf: bytes) -> AccessEntry:
    f = Fields(
        parse_json_object(leaf, what=f"access record {index}"), what=f"access record {index}"
    )
    f.expect("type", ACCESS_TYPE)
    return AccessEntry(
        index,
        f.text("at"),
        f.text("who"),
        f.text("key_id"),
        f.texts("roles"),
        f.text("route"),
        f.texts("objects"),
        f.text("prev"),
    )


def verify_access(authority: Authority, note: str, lines: Sequence[bytes]) -> list[Said]:
    """Problems with an exported access log (empty: it verifies), each a sentence for people
    (``Said``: English in ``.english``, the reader's language by ``render``)."""
    origin = access_origin(authority)
    try:
        checkpoint, _ = open_checkpoint(
            note, [NoteVerifier(origin, authority.log_key)], origin=origin
        )
    except CustodyError as e:
        return [
            Said(N_("access checkpoint does not verify under the log key: {error}"), {"error": e})
        ]
    problems: list[Said] = []
    leaves = [line.rstrip(b"\n") for line in lines]
    if len(leaves) != checkpoint.size:
        problems.append(
            Said(
                N_("the access log holds {n} records, its checkpoint {size}"),
                {"n": len(leaves), "size": checkpoint.size},
            )
        )
    prev = GENESIS
    for index, leaf in enumerate(leaves):
        try:
            entry = parse_access_leaf(index, leaf)
            if canonical_json(parse_json_object(leaf, what=Phrase("access record"))) != leaf:
                raise FormatError(N_("access record {index} is not canonical JSON"), index=index)
        except FormatError as e:
            problems.append(Said("{error}", {"error": e}))
            prev = merkle.leaf_hash(leaf).hex()
            continue
        if entry.prev != prev:
            problems.append(
                Said(
                    N_("access record {index} does not link to the record before it"),
                    {"index": index},
                )
            )
        prev = merkle.leaf_hash(leaf).hex()
    _, root = access_root(leaves)
    if root != checkpoint.root:
        problems.append(Said(N_("the access log's records do not hash to its checkpoint's root")))
    return problems


__all__ = [
    "ACCESS_CHECKPOINT_FILE",
    "ACCESS_FILE",
    "ACCESS_TYPE",
    "GENESIS",
    "AccessEntry",
    "access_origin",
    "access_root",
    "parse_access_leaf",
    "verify_access",
]
