"""RFC 9162 (section 2) Merkle tree hashing, proofs over stored hashes, and proof verifiers.

Rules:
- Leaf hash = SHA-256(0x00 || entry); interior node hash = SHA-256(0x01 || left || right);
  the root of the empty tree is SHA-256 of the empty string (RFC 9162 2.1.1).
- Stored nodes: after leaf ``i`` is appended, every *complete* perfect subtree it finishes is
  stored as ``(level, index, hash)``; node ``(level, index)`` covers the leaves
  ``[index * 2**level, (index + 1) * 2**level)`` and level 0 holds the leaf hashes. Nodes are
  never rewritten: a stored hash depends only on the leaves below it, which never change.
- A root, an inclusion proof (RFC 9162 2.1.3.1) or a consistency proof (2.1.4.1) for any tree
  size needs only O(log n) stored nodes: a right edge that is not a perfect subtree is an
  *ephemeral* node, hashed on demand from the perfect subtrees that cover it. The ``*_nodes``
  functions list exactly which stored nodes a result needs, so a storage layer can fetch them
  in one query and hand the dict to the matching ``*_from_nodes`` function.
- Verifiers are pure (RFC 9162 2.1.3.2 / 2.1.4.2) and refuse with ``LogConsistencyError``:
  an index outside the tree, a proof with a missing, extra or altered element, wrong roots.
  A consistency proof *from size 0* is refused outright, before the equal-size shortcut: an
  empty tree is trivially a prefix of every tree, so such a "proof" proves nothing and a
  caller relying on it would be trusting the second root blindly. Equal sizes need an empty
  proof and equal roots. A hash that is not 32 bytes is malformed input (``FormatError``).
- Callers take tree sizes and roots only from verified checkpoints, never from a proof object:
  these functions take them as separate arguments for that reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence

from crypto.errors import N_, FormatError, LogConsistencyError, UsageError

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()

Node = tuple[int, int]
"""A stored node's address: (level, index)."""
StoredNode = tuple[int, int, bytes]
"""A node to store: (level, index, hash)."""
NodeGetter = Callable[[int, int], bytes]
"""Reads one stored node; raises KeyError if it is not stored."""

_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data): the hash of one log entry."""
    return _sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): the hash of an interior node."""
    return _sha256(NODE_PREFIX + left + right).digest()


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        length = len(value) if isinstance(value, bytes | bytearray) else type(value).__name__
        raise FormatError(
            N_("{what} must be a {hash_size}-byte SHA-256 hash, not {length}"),
            what=what,
            hash_size=HASH_SIZE,
            length=length,
        )


def _check_size(size: int, what: str) -> None:
    if not isinstance(size, int) or isinstance(size, bool) or size < 0 or size >= 1 << 64:
        raise FormatError(
            N_("{what} must be an integer in [0, 2^64), not {size!r}"), what=what, size=size
        )


def _largest_power_of_two_below(n: int) -> int:
    """The largest power of two strictly smaller than n (n >= 2): RFC 9162's split point k."""
    return 1 << ((n - 1).bit_length() - 1)


# --- appending -----------------------------------------------------------------------------


def new_nodes_after_append(index: int, leaf: bytes, get: NodeGetter) -> list[StoredNode]:
    """The nodes to store once the leaf hash ``leaf`` is appended at ``index``.

    The leaf itself, then each parent its arrival completes, computed from stored left
    siblings read through ``get`` (at most log2(index + 1) reads).
    """
    _check_size(index, "leaf index")
    _check_hash(leaf, "leaf hash")
    out: list[StoredNode] = [(0, index, bytes(leaf))]
    h = bytes(leaf)
    level, idx = 0, index
    while idx & 1:
        h = node_hash(get(level, idx - 1), h)
        level, idx = level + 1, idx >> 1
        out.append((level, idx, h))
    return out


def frontier_nodes(size: int) -> list[Node]:
    """The stored nodes a batch append starting at ``size`` needs: the left siblings to be.

    For each set bit ``L`` of ``size``, node ``(L, (size >> L) - 1)`` is complete and is a left
    child still waiting for its right sibling.
    """
    _check_size(size, "tree size")
    return [(level, (size >> level) - 1) for level in range(size.bit_length()) if size >> level & 1]


def nodes_for_batch(
    start_index: int, leaf_hashes: Sequence[bytes], get: NodeGetter
) -> list[StoredNode]:
    """The nodes to store after appending ``leaf_hashes`` to a tree of size ``start_index``.

    Reads the O(log n) frontier once, then keeps it in memory: no read-back per leaf.
    Returned in append order (a leaf, then the parents it completes).
    """
    frontier: list[bytes] = [b""] * 64
    for level, idx in frontier_nodes(start_index):
        frontier[level] = get(level, idx)
    out: list[StoredNode] = []
    append = out.append
    index = start_index
    for leaf in leaf_hashes:
        if len(leaf) != HASH_SIZE:
            _check_hash(leaf, f"leaf hash {index}")
        h = leaf if type(leaf) is bytes else bytes(leaf)
        append((0, index, h))
        level, idx = 0, index
        while idx & 1:
            h = _sha256(NODE_PREFIX + frontier[level] + h).digest()
            level, idx = level + 1, idx >> 1
            append((level, idx, h))
        # ``idx`` is even now: this node is a left child until its sibling arrives.
        frontier[level] = h
        index += 1
    return out


# --- which stored nodes a result needs ---------------------------------------------------


def _range_nodes(begin: int, end: int) -> list[Node]:
    """The perfect subtrees covering leaves [begin, end), largest (leftmost) first.

    Valid for the ranges RFC 9162's recursion produces, whose start is a multiple of the
    largest power of two not above their length, so each piece is an aligned stored node.
    """
    out: list[Node] = []
    pos, remaining = begin, end - begin
    while remaining:
        level = remaining.bit_length() - 1
        out.append((level, pos >> level))
        pos += 1 << level
        remaining -= 1 << level
    return out


def _inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """RFC 9162 2.1.3.1 PATH(m, D[n]) as leaf ranges, leaf level first."""
    ranges: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _largest_power_of_two_below(hi - lo)
        if index < lo + k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
    ranges.reverse()
    return ranges


def _consistency_ranges(m: int, n: int) -> list[tuple[int, int]]:
    """RFC 9162 2.1.4.1 PROOF(m, D[n]) = SUBPROOF(m, D[n], true) as leaf ranges, bottom first."""
    ranges: list[tuple[int, int]] = []
    lo, hi, whole = 0, n, True
    while hi != m:
        k = _largest_power_of_two_below(hi - lo)
        if m - lo <= k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
            whole = False
    if not whole:
        ranges.append((lo, hi))
    ranges.reverse()
    return ranges


def _check_inclusion_args(index: int, size: int) -> None:
    _check_size(index, "leaf index")
    _check_size(size, "tree size")
    if index >= size:
        raise UsageError(
            N_("leaf index {index} is not in a tree of size {size}"), index=index, size=size
        )


def _check_consistency_args(m: int, n: int) -> None:
    _check_size(m, "first tree size")
    _check_size(n, "second tree size")
    if m > n:
        raise UsageError(N_("no consistency proof from size {m} to the smaller size {n}"), m=m, n=n)


def _unique(ranges: Iterable[tuple[int, int]]) -> list[Node]:
    seen: dict[Node, None] = {}
    for begin, end in ranges:
        for node in _range_nodes(begin, end):
            seen[node] = None
    return list(seen)


def root_nodes(size: int) -> list[Node]:
    """Stored nodes whose hashes give the root at ``size`` (one per set bit of ``size``)."""
    _check_size(size, "tree size")
    return _range_nodes(0, size)


def inclusion_proof_nodes(index: int, size: int) -> list[Node]:
    """Stored nodes an inclusion proof of leaf ``index`` in a tree of ``size`` needs."""
    _check_inclusion_args(index, size)
    return _unique(_inclusion_ranges(index, size))


def consistency_proof_nodes(m: int, n: int) -> list[Node]:
    """Stored nodes a consistency proof from size ``m`` to size ``n`` needs."""
    _check_consistency_args(m, n)
    if m in (0, n):
        return []
    return _unique(_consistency_ranges(m, n))


# --- assembling results from fetched nodes -----------------------------------------------


def _range_hash(begin: int, end: int, nodes: Mapping[Node, bytes]) -> bytes:
    """MTH(D[begin:end]): one stored node, or an ephemeral node folded from the right."""
    parts = _range_nodes(begin, end)
    h = nodes[parts[-1]]
    for node in reversed(parts[:-1]):
        h = node_hash(nodes[node], h)
    return h


def root_from_nodes(size: int, nodes: Mapping[Node, bytes]) -> bytes:
    """The root at ``size`` from a dict holding at least ``root_nodes(size)``."""
    _check_size(size, "tree size")
    return EMPTY_ROOT if size == 0 else _range_hash(0, size, nodes)


def inclusion_proof_from_nodes(index: int, size: int, nodes: Mapping[Node, bytes]) -> list[bytes]:
    """The audit path from a dict holding at least ``inclusion_proof_nodes(index, size)``."""
    _check_inclusion_args(index, size)
    return [_range_hash(b, e, nodes) for b, e in _inclusion_ranges(index, size)]


def consistency_proof_from_nodes(m: int, n: int, nodes: Mapping[Node, bytes]) -> list[bytes]:
    """The consistency proof from a dict holding at least ``consistency_proof_nodes(m, n)``."""
    _check_consistency_args(m, n)
    if m in (0, n):
        return []
    return [_range_hash(b, e, nodes) for b, e in _consistency_ranges(m, n)]


def _fetch(nodes: Iterable[Node], get: NodeGetter) -> dict[Node, bytes]:
    return {node: get(*node) for node in nodes}


def root(size: int, get: NodeGetter) -> bytes:
    """MTH of the first ``size`` leaves, from stored nodes."""
    return root_from_nodes(size, _fetch(root_nodes(size), get))


def inclusion_proof(index: int, size: int, get: NodeGetter) -> list[bytes]:
    """RFC 9162 2.1.3.1 inclusion proof of leaf ``index`` in the tree of ``size``."""
    return inclusion_proof_from_nodes(index, size, _fetch(inclusion_proof_nodes(index, size), get))


def consistency_proof(m: int, n: int, get: NodeGetter) -> list[bytes]:
    """RFC 9162 2.1.4.1 consistency proof from size ``m`` to size ``n`` (empty if m is 0 or n)."""
    return consistency_proof_from_nodes(m, n, _fetch(consistency_proof_nodes(m, n), get))


# --- verifiers ------------------------------------------------------------------------------


def _check_proof(proof: Sequence[bytes], what: str) -> None:
    if isinstance(proof, bytes | bytearray | str):
        raise FormatError(N_("{what} must be a list of hashes"), what=what)
    for i, element in enumerate(proof):
        _check_hash(element, f"{what} element {i}")


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """RFC 9162 2.1.3.2: raise unless ``proof`` shows ``leaf_hash`` at ``index`` under ``root``.

    ``size`` and ``root`` must come from a verified checkpoint.
    """
    _check_hash(leaf_hash, "leaf hash")
    _check_hash(root, "root hash")
    _check_size(index, "leaf index")
    _check_size(size, "tree size")
    _check_proof(proof, "inclusion proof")
    if index >= size:
        raise LogConsistencyError(
            N_("leaf index {index} is not in a tree of size {size}"), index=index, size=size
        )
    if inclusion_root(bytes(leaf_hash), index, size, proof) != root:
        raise LogConsistencyError(
            N_("inclusion proof for leaf {index} in size {size} does not lead to the root"),
            index=index,
            size=size,
        )


def inclusion_root(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root an inclusion proof leads to from ``leaf_hash`` at ``index`` (RFC 9162
    2.1.3.2's fold), or ``LogConsistencyError`` for a proof of the wrong length. No check of
    its inputs' form (``verify_inclusion`` makes them): the log folds the proofs it builds
    from its own nodes, to compare with the root it signed, before serving them."""
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            raise LogConsistencyError(
                N_("inclusion proof for leaf {index} in size {size} has too many elements"),
                index=index,
                size=size,
            )
        if fn & 1 or fn == sn:
            r = _sha256(NODE_PREFIX + p + r).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _sha256(NODE_PREFIX + r + p).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise LogConsistencyError(
            N_("inclusion proof for leaf {index} in size {size} has too few elements"),
            index=index,
            size=size,
        )
    return r


def verify_consistency(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 2.1.4.2: raise unless the tree (size1, root1) is a prefix of (size2, root2).

    Sizes and roots must come from verified checkpoints. Size 0 is refused first (see the
    module rules), then equal sizes need an empty proof and equal roots.
    """
    _check_size(size1, "first tree size")
    _check_size(size2, "second tree size")
    _check_hash(root1, "first root")
    _check_hash(root2, "second root")
    _check_proof(proof, "consistency proof")
    if size1 > size2:
        raise LogConsistencyError(
            N_("tree size went back from {size1} to {size2}"), size1=size1, size2=size2
        )
    if size1 == 0:
        raise LogConsistencyError(
            N_("a consistency proof from size 0 proves nothing; the empty tree needs no proof")
        )
    if size1 == size2:
        if proof:
            raise LogConsistencyError(
                N_(
                    "consistency proof between equal sizes {size1} must be empty,"
                    " it has {n_proof} elements"
                ),
                size1=size1,
                n_proof=len(proof),
            )
        if root1 != root2:
            raise LogConsistencyError(
                N_("two different roots for the same tree size {size1}"), size1=size1
            )
        return
    if not proof:
        raise LogConsistencyError(
            N_("empty consistency proof from size {size1} to {size2}"), size1=size1, size2=size2
        )
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        # The old tree is a perfect subtree: its root is the proof's implicit first element.
        path.insert(0, bytes(root1))
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise LogConsistencyError(
                N_("consistency proof from {size1} to {size2} has too many elements"),
                size1=size1,
                size2=size2,
            )
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise LogConsistencyError(
            N_("consistency proof from {size1} to {size2} is too short"), size1=size1, size2=size2
        )
    if fr != root1:
        raise LogConsistencyError(
            N_("consistency proof from {size1} to {size2} does not lead to the first root"),
            size1=size1,
            size2=size2,
        )
    if sr != root2:
        raise LogConsistencyError(
            N_("consistency proof from {size1} to {size2} does not lead to the second root"),
            size1=size1,
            size2=size2,
        )


# --- an in-memory tree ----------------------------------------------------------------------


class MemoryTree:
    """A dict-backed stored-node tree for tests, simulators and benchmarks."""

    def __init__(self) -> None:
        self.nodes: dict[Node, bytes] = {}
        self.size = 0

    def get(self, level: int, index: int) -> bytes:
        return self.nodes[(level, index)]

    def get_many(self, wanted: Iterable[Node]) -> dict[Node, bytes]:
        return {node: self.nodes[node] for node in wanted}

    def append(self, data: bytes) -> int:
        """Append one entry (hashed as a leaf); returns its index."""
        return self.append_leaf_hash(leaf_hash(data))

    def append_leaf_hash(self, leaf: bytes) -> int:
        index = self.size
        for level, idx, h in new_nodes_after_append(index, leaf, self.get):
            self.nodes[(level, idx)] = h
        self.size += 1
        return index

    def extend(self, entries: Iterable[bytes]) -> None:
        """Append many entries through the batch path."""
        hashes = [leaf_hash(e) for e in entries]
        for level, idx, h in nodes_for_batch(self.size, hashes, self.get):
            self.nodes[(level, idx)] = h
        self.size += len(hashes)

    def root(self, size: int | None = None) -> bytes:
        return root(self.size if size is None else self._within(size), self.get)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        return inclusion_proof(index, self.size if size is None else self._within(size), self.get)

    def consistency_proof(self, m: int, n: int | None = None) -> list[bytes]:
        return consistency_proof(m, self.size if n is None else self._within(n), self.get)

    def _within(self, size: int) -> int:
        if size > self.size:
            raise UsageError(
                N_("tree size {size} is beyond the {size2} leaves appended"),
                size=size,
                size2=self.size,
            )
        return size
