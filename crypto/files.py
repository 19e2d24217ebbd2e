"""Reading a file a person names: the one safe way, used by every command and every layer.

Rules:
- Only a regular file (a symlink to one is followed), or ``-`` for standard input where the
  caller allows it. A directory, a FIFO, a socket, a character or block device (``/dev/zero``),
  a symlink loop and a dangling symlink are refused by name (``UsageError``), never read: a
  FIFO is opened non-blocking, so naming one never hangs.
- Each kind of file has a size cap; a file beyond it is refused before it is read, and a file
  (or standard input) that grows past it while read is refused too.
- A missing file is ``NotFoundError``; a file this account may not read is ``UsageError``.
- The bytes are returned as they are; parsing (JSON through ``crypto.encoding.parse_json``,
  with its duplicate-key, depth and number rules) is the caller's, chained ``from`` here.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from pathlib import Path
from typing import BinaryIO

from crypto.errors import N_, NotFoundError, UsageError

KIB = 1 << 10
MIB = 1 << 20

# Caps per kind of file (what a real one of that kind could plausibly be, with room).
CAP_KEY = 64 * KIB  # a sealed key file
CAP_NOTE = 64 * KIB  # a checkpoint note, a witness request, cosignature lines
CAP_SMALL_JSON = 1 * MIB  # config, policies, receipts, witness state, an act
CAP_ENVELOPE = 16 * MIB  # one signed statement (the HTTP cap too)
CAP_BUNDLE = 64 * MIB  # a trust bundle or an import file
CAP_PAPER = 4 * 1024 * MIB  # a question paper's source (streamed, not read at once)
CAP_PASSPHRASE = 4 * KIB

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _not_regular(mode: int) -> str | None:
    for test, name in _KINDS:
        if test(mode):
            return name
    return None if stat.S_ISREG(mode) else "not a regular file"


def open_user_file(path: Path | str, *, what: str, limit: int) -> tuple[BinaryIO, int]:
    """Open a regular file a person named, checked as the module rules say; returns the open
    file (the caller closes it) and its size."""
    name = str(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(name, flags)
    except FileNotFoundError as e:
        if os.path.islink(name):
            raise UsageError(
                N_("{what} {name} is a symlink to nothing (it points nowhere)"),
                what=what,
                name=name,
            ) from e
        raise NotFoundError(N_("{what} {name} does not exist"), what=what, name=name) from e
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UsageError(N_("{what} {name} is a symlink loop"), what=what, name=name) from e
        if e.errno == errno.ENOTDIR:
            raise NotFoundError(
                N_("{what} {name}: a part of the path is not a folder"), what=what, name=name
            ) from e
        if e.errno in (errno.EACCES, errno.EPERM):
            raise UsageError(
                N_("{what} {name} is not readable by this account"), what=what, name=name
            ) from e
        if e.errno == errno.ENXIO:  # a FIFO with no writer, a socket
            raise UsageError(N_("{what} {name} is not a regular file"), what=what, name=name) from e
        raise UsageError(
            N_("cannot open {what} {name}: {strerror}"), what=what, name=name, strerror=e.strerror
        ) from e
    try:
        info = os.fstat(fd)
        kind = _not_regular(info.st_mode)
        if kind is not None:
            raise UsageError(
                N_("{what} {name} is {kind}, not a regular file"), what=what, name=name, kind=kind
            )
        if info.st_size > limit:
            raise UsageError(
                N_("{what} {name} is {st_size} bytes, more than the {limit} accepted"),
                what=what,
                name=name,
                st_size=info.st_size,
                limit=limit,
            )
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb"), info.st_size
    except BaseException:
        os.close(fd)
        raise


CHUNK = 1 * MIB


def _read_capped(source: BinaryIO, limit: int) -> bytes:
    """Up to ``limit + 1`` bytes, in chunks (a cap is a bound, not an allocation)."""
    parts: list[bytes] = []
    total = 0
    while total <= limit:
        chunk = source.read(min(CHUNK, limit + 1 - total))
        if not chunk:
            break
        parts.append(chunk)
        total += len(chunk)
    return b"".join(parts)


def read_user_file(
    path: Path | str,
    *,
    what: str,
    limit: int,
    stdin: bool = True,
    stream: BinaryIO | None = None,
) -> bytes:
    """The bytes of a file a person named (``-``: standard input, when ``stdin``)."""
    if str(path) == "-":
        if not stdin:
            raise UsageError(
                N_("{what}: '-' (standard input) is not accepted here; name a file"), what=what
            )
        source = stream if stream is not None else sys.stdin.buffer
        data = _read_capped(source, limit)
        if len(data) > limit:
            raise UsageError(
                N_("{what} on standard input is more than the {limit} bytes accepted"),
                what=what,
                limit=limit,
            )
        return data
    f, _ = open_user_file(path, what=what, limit=limit)
    with f:
        try:
            data = _read_capped(f, limit)
        except OSError as e:
            raise UsageError(
                N_("cannot read {what} {path}: {strerror}"),
                what=what,
                path=path,
                strerror=e.strerror,
            ) from e
    if len(data) > limit:
        raise UsageError(
            N_("{what} {path} grew past the {limit} bytes accepted while read"),
            what=what,
            path=path,
            limit=limit,
        )
    return data


def read_optional_file(path: Path | str, *, what: str, limit: int) -> bytes | None:
    """Like ``read_user_file`` for a file the caller may do without: None only when nothing
    at all is at ``path`` (a dangling symlink is an error, not an absence)."""
    if not os.path.lexists(str(path)):
        return None
    return read_user_file(path, what=what, limit=limit, stdin=False)
