"""The one safe way to read a file a person names: every kind of not-a-file refused by name."""

from __future__ import annotations

import io
import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from crypto.encoding import parse_json
from crypto.errors import FormatError, NotFoundError, UsageError
from crypto.files import read_optional_file, read_user_file


def _dir(tmp: Path) -> Path:
    (tmp / "d").mkdir()
    return tmp / "d"


def _fifo(tmp: Path) -> Path:
    os.mkfifo(tmp / "fifo")
    return tmp / "fifo"


def _loop(tmp: Path) -> Path:
    (tmp / "a").symlink_to(tmp / "b")
    (tmp / "b").symlink_to(tmp / "a")
    return tmp / "a"


def _dangling(tmp: Path) -> Path:
    (tmp / "dangling").symlink_to(tmp / "nowhere")
    return tmp / "dangling"


def _socket(tmp: Path) -> Path:
    path = tmp / "sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()
    return path


def _large(tmp: Path) -> Path:
    path = tmp / "large"
    with path.open("wb") as f:
        f.truncate(101)
    return path


def _missing(tmp: Path) -> Path:
    return tmp / "missing"


def _under_a_file(tmp: Path) -> Path:
    (tmp / "plain").write_bytes(b"x")
    return tmp / "plain" / "child"


CASES: dict[str, tuple[Callable[[Path], Path], type[Exception], str]] = {
    "directory": (_dir, UsageError, "a directory"),
    "fifo": (_fifo, UsageError, "FIFO"),
    "dev-zero": (lambda _: Path("/dev/zero"), UsageError, "character device"),
    "symlink-loop": (_loop, UsageError, "symlink loop"),
    "dangling-symlink": (_dangling, UsageError, "symlink to nothing"),
    "socket": (_socket, UsageError, "regular file"),
    "too-large": (_large, UsageError, "more than the 100"),
    "missing": (_missing, NotFoundError, "does not exist"),
    "under-a-file": (_under_a_file, NotFoundError, "not a folder"),
}


@pytest.mark.parametrize("name", list(CASES), ids=list(CASES))
def test_not_a_file_is_refused_by_name(tmp_path: Path, name: str) -> None:
    make, error, words = CASES[name]
    path = make(tmp_path)
    with pytest.raises(error) as caught:
        read_user_file(path, what="test file", limit=100)
    assert words in caught.value.message  # type: ignore[attr-defined]
    assert str(path) in caught.value.message  # type: ignore[attr-defined]


def test_a_regular_file_and_a_symlink_to_one_are_read(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x" * 100)
    (tmp_path / "link").symlink_to(tmp_path / "f")
    assert read_user_file(tmp_path / "f", what="f", limit=100) == b"x" * 100
    assert read_user_file(tmp_path / "link", what="f", limit=100) == b"x" * 100


def test_stdin_is_capped_and_can_be_refused() -> None:
    assert read_user_file("-", what="in", limit=4, stream=io.BytesIO(b"abcd")) == b"abcd"
    with pytest.raises(UsageError):
        read_user_file("-", what="in", limit=4, stream=io.BytesIO(b"abcde"))
    with pytest.raises(UsageError):
        read_user_file("-", what="in", limit=4, stdin=False)


def test_optional_absent_is_none_but_a_dangling_symlink_is_an_error(tmp_path: Path) -> None:
    assert read_optional_file(tmp_path / "none", what="x", limit=10) is None
    with pytest.raises(UsageError):
        read_optional_file(_dangling(tmp_path), what="x", limit=10)


@pytest.mark.parametrize(
    "text",
    ["[" * 100_000, '{"a": NaN}', "[Infinity]", "[-Infinity]", "1" * 5000, '{"a":1,"a":2}'],
    ids=["deep", "nan", "infinity", "minus-infinity", "huge-integer", "duplicate-key"],
)
def test_json_depth_and_number_rules(text: str) -> None:
    with pytest.raises(FormatError):
        parse_json(text.encode(), what="doc")
