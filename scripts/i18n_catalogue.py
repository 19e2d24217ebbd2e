"""Update the CLI's message catalogue: collect every message, merge into the Chinese .po, compile.

Messages are the strings passed to ``_()``, ``ngettext()`` and the demo's ``say()`` in the
command line and the demo (found by Babel's extractor), the refusal templates marked ``N_()``
anywhere in the packages (``crypto.errors``: a ``CustodyError``'s message and hint, shown in the
reader's language by the CLI and the API), and the docstrings of every registered command (the
CLI gives them as help, translated). Existing translations are kept; a new
message is added untranslated (the test suite then fails until it is translated).

Run: python scripts/i18n_catalogue.py            (writes custody.po and compiles custody.mo)
     python scripts/i18n_catalogue.py --check    (exit 1 if the .po misses a message)
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import typer
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

from custody.cli import ENTRIES, load

ROOT = Path(__file__).resolve().parents[1]
PO = ROOT / "custody" / "locale" / "zh_CN" / "LC_MESSAGES" / "custody.po"
MO = PO.with_suffix(".mo")
SOURCES = (ROOT / "custody" / "cli", ROOT / "custody" / "demo")
KEYWORDS = {"_": None, "ngettext": (1, 2), "say": None}
# Refusal templates: ``N_("...")`` and ``Phrase("...")`` in every package (only those keywords:
# ``_`` outside the CLI is not the catalogue's).
ERROR_SOURCES = tuple(ROOT / name for name in ("crypto", "keys", "labels", "custody", "api"))
ERROR_KEYWORDS = {"N_": None, "Phrase": None}


def extracted() -> Iterator[tuple[str | tuple[str, str], str]]:
    """(message, where) for every message of the sources and every command's docstring."""
    for folders, keywords in ((SOURCES, KEYWORDS), (ERROR_SOURCES, ERROR_KEYWORDS)):
        for folder in folders:
            for filename, lineno, message, _comments, _context in extract_from_dir(
                folder, keywords=keywords, comment_tags=()
            ):
                yield message, f"{folder.relative_to(ROOT)}/{filename}:{lineno}"

    def walk(group: typer.Typer) -> Iterator[tuple[str, str]]:
        for command in group.registered_commands:
            if command.callback is not None and (doc := inspect.getdoc(command.callback)):
                yield doc, f"{command.callback.__module__}.{command.callback.__name__}"
        for sub in group.registered_groups:
            if sub.typer_instance is not None:
                yield from walk(sub.typer_instance)

    for entry in ENTRIES:  # the CLI loads its commands lazily: load each (with its wiring)
        load(entry)
        target = getattr(importlib.import_module(entry.module), entry.attribute)
        if entry.group:
            yield from walk(target)
        elif doc := inspect.getdoc(target):
            yield doc, f"{target.__module__}.{target.__name__}"


def wanted() -> Catalog:
    catalog = Catalog(locale="zh_CN", domain="custody", project="custody", charset="utf-8")
    for message, where in extracted():
        path, _sep, line = where.rpartition(":")
        location = (path, int(line)) if line.isdigit() else (where, 0)
        if isinstance(message, tuple):
            catalog.add(message, string=("", ""), locations=[location])
        else:
            catalog.add(message, locations=[location])
    return catalog


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    want = wanted()
    have = read_po(PO.open("rb"), locale="zh_CN", domain="custody") if PO.exists() else None
    if have is not None:  # header dates stay as they were: no churn from a run that adds nothing
        want.creation_date = have.creation_date
        want.revision_date = have.revision_date
    missing = []
    for msg in want:
        if not msg.id:
            continue
        old = have.get(msg.id) if have is not None else None
        done = old is not None and old.string and not old.fuzzy
        if done and (not isinstance(old.string, tuple) or all(old.string)):
            msg.string = old.string
        else:
            missing.append(msg.id)
    if args.check:
        for m in missing:
            print(f"untranslated: {m!r}")
        return 1 if missing else 0
    buf = BytesIO()
    # No source locations: line numbers would change the .po (and conflict in merges) whenever
    # code moves; messages are kept in the order they are first found.
    write_po(buf, want, width=100, omit_header=False, sort_output=False, no_location=True)
    PO.parent.mkdir(parents=True, exist_ok=True)
    PO.write_bytes(buf.getvalue())
    with MO.open("wb") as fh:
        write_mo(fh, want)
    print(f"{PO.relative_to(ROOT)}: {len(want)} messages, {len(missing)} untranslated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
