"""A custody home: one authority's folder (config, sealed authority keys, database).

Layout (what the service reads stays under the home; the root key does not):
  custody.json           format, authority id, database URL
  exams.json             the authority's per-exam policy (handover witness, retention), by hand
  witnesses.json         the authority's witnesses and its witness policy (k of n), by hand
  authority/log.key      log key (signs checkpoints), sealed under its own passphrase
  authority/log.checkpoint  the last checkpoint the log key signed, kept outside the database
                         (fsynced after each append; the log refuses a database behind it)
  authority/system.key   system key (signs incident statements), sealed under its own passphrase
  ../HOME.root.key       root key (issues and revokes certificates only), sealed under its own
                         passphrase, written beside the home, never inside it: move it to
                         offline media; commands that need it take --root-key (CUSTODY_ROOT_KEY)
  people/*.key           key files written at enrolment, each under its holder's passphrase
  custody.db             the embedded SQLite database (unless the config names another URL)
  trust.version          a token rewritten after every enrolment, revocation and import, so a
                         running service reloads its trust store only when it changed
  desk.lock              held by the one `custody serve --workers N` process running the desk
  rates.table            the rate limiter's counters, shared by every worker of `custody serve`
                         (api/rate_store.py; only while a window lasts; may be deleted when stopped)

The home is made 0700 when the authority is created, and the CLI runs every command under
umask 077, so the database, its WAL files and every key file are the authority account's alone.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from crypto.encoding import Fields, parse_json_object
from crypto.files import CAP_SMALL_JSON, read_optional_file, read_user_file
from custody.errors import N_, ConflictError, NotFoundError, Phrase, StorageError
from custody.exams import EXAMS_FILE, ExamPolicies, ExamPolicy, exams_from_json
from custody.i18n import DEFAULT_TIME_ZONE
from custody.witnesses import WITNESSES_FILE, WitnessPolicy, witness_policy_from_json
from keys.keyfile import KeyPair, read_keyfile, write_new_file

if TYPE_CHECKING:  # reading a home's config never loads the database layer
    from custody.store.handles import Database

HOME_FORMAT = "custody-home/v1"
CONFIG_NAME = "custody.json"
TRUST_VERSION = "trust.version"


@dataclass
class Home:
    path: Path
    root_key: Path | None = None  # where the offline root key is (default: beside the home)

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_NAME

    def exists(self) -> bool:
        return self.config_path.exists()

    @cached_property
    def config(self) -> Fields:
        try:
            data = read_user_file(
                self.config_path, what=Phrase("home config"), limit=CAP_SMALL_JSON, stdin=False
            )
        except NotFoundError as e:
            raise NotFoundError(
                N_("{path} is not a custody home (no {config_name})"),
                hint=N_("create one with `custody --home DIR init --name AUTHORITY`"),
                path=self.path,
                config_name=CONFIG_NAME,
            ) from e
        f = Fields(parse_json_object(data, what=CONFIG_NAME), what=CONFIG_NAME)
        f.expect("format", HOME_FORMAT)
        return f

    def trust_version(self) -> tuple[int, int, int] | None:
        """Which version of the trust rows this is (``None``: never bumped): one stat call.
        ``bump_trust_version`` replaces the file, so its inode, time and size change."""
        try:
            st = os.stat(self._trust_version_file)
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    @cached_property
    def _trust_version_file(self) -> str:
        return str(self.path / TRUST_VERSION)  # asked on every request: joined once

    @property
    def time_zone(self) -> str:
        """The zone people read this authority's times in: ``time_zone`` in custody.json
        (``custody init --time-zone``), else Asia/Shanghai. Stored times stay UTC."""
        zone = self.config.obj.get("time_zone") if self.exists() else None
        return zone if isinstance(zone, str) and zone else DEFAULT_TIME_ZONE

    def bump_trust_version(self) -> None:
        """After certificates or revocations were committed: a running service reloads."""
        target = self.path / TRUST_VERSION
        tmp = target.with_name(f".{TRUST_VERSION}.{secrets.token_hex(8)}")
        try:
            tmp.write_text(secrets.token_hex(16) + "\n", encoding="ascii")
            os.replace(tmp, target)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise StorageError(
                N_("cannot write {target}: {strerror}"), target=target, strerror=e.strerror
            ) from e

    @property
    def database_url(self) -> str:
        url = self.config.text("database_url")
        # Percent-encoded: the URL parser decodes it, so a home path holding '%', '#', '?' or
        # any Unicode (考试/2027) reaches the driver exactly as it is on disk.
        return url.replace("{home}", quote(str(self.path.resolve()), safe="/"))

    @cached_property
    def engine(self) -> Database:
        from custody.store.db import create_schema, make_engine  # noqa: PLC0415 (fast start)

        engine = make_engine(self.database_url)
        create_schema(engine)
        return engine

    @property
    def root_key_path(self) -> Path:
        if self.root_key is not None:
            return self.root_key
        return self.path.parent / f"{self.path.name}.root.key"

    def authority_key_path(self, which: str) -> Path:
        if which == "root":
            return self.root_key_path
        return self.path / "authority" / f"{which}.key"

    @property
    def signed_head_path(self) -> Path:
        """The last signed checkpoint, beside the log key (custody.store.guard)."""
        from custody.store.guard import SIGNED_HEAD_NAME  # noqa: PLC0415 (fast start)

        return self.path / "authority" / SIGNED_HEAD_NAME

    def authority_key(self, which: str, passphrase: str) -> KeyPair:
        path = self.authority_key_path(which)
        if which == "root" and not path.exists():
            raise NotFoundError(
                N_("the authority's root key is not at {path}"),
                hint=N_(
                    "bring the offline root key and name it with --root-key FILE "
                    "(or CUSTODY_ROOT_KEY)"
                ),
                path=path,
            )
        return read_keyfile(path, passphrase)

    def people_dir(self) -> Path:
        return self.path / "people"

    def exam_policies(self) -> ExamPolicies:
        """The authority's ``exams.json``; a home without one has no exam policy at all."""
        path = self.path / EXAMS_FILE
        try:
            data = read_user_file(
                path, what=Phrase("exam policies"), limit=CAP_SMALL_JSON, stdin=False
            )
        except NotFoundError as e:
            raise NotFoundError(
                N_(
                    "{path} is missing: the authority's exam policies (handover witness, retention)"
                ),
                hint=N_(
                    'write {{"exams": {{"EXAM-ID": {{"handover_witness": true, '
                    '"retention_until": "2028-03-01T00:00:00Z"}}}}}} '
                    '(docs/formats.md, "Small files")'
                ),
                path=path,
            ) from e
        return exams_from_json(data, source=str(path))

    def exam_policy(self, exam_id: str) -> ExamPolicy:
        return self.exam_policies().of(exam_id)

    @property
    def witnesses_path(self) -> Path:
        return self.path / WITNESSES_FILE

    def witness_policy(self) -> WitnessPolicy | None:
        """The authority's ``witnesses.json`` (k of n), or None when the home has none."""
        data = read_optional_file(
            self.witnesses_path, what=Phrase("witness policy"), limit=CAP_SMALL_JSON
        )
        if data is None:
            return None
        return witness_policy_from_json(data, source=str(self.witnesses_path))

    def require_witness_policy(self) -> WitnessPolicy:
        policy = self.witness_policy()
        if policy is None:
            raise NotFoundError(
                N_("{witnesses_path} is missing: the authority lists no witnesses"),
                hint=N_(
                    'write {{"quorum": K, "witnesses": [{{"name": ..., "vkey": '
                    '...}}]}} (docs/formats.md, "Small files")'
                ),
                witnesses_path=self.witnesses_path,
            )
        return policy

    @property
    def rehearsal(self) -> bool:
        """A rehearsal home (the demo, tests, training) accepts a clock set by hand (``--now``);
        a home made without it runs on the real clock for good: no command turns it on."""
        return self.config.obj.get("rehearsal") is True

    def write_config(
        self,
        authority_id: str,
        database_url: str | None,
        *,
        rehearsal: bool = False,
        time_zone: str | None = None,
    ) -> None:
        if self.exists():
            raise ConflictError(
                N_("{path} already holds an authority; refusing to mix two"), path=self.path
            )
        url = database_url or "sqlite:///{home}/custody.db"
        body: dict[str, object] = {
            "format": HOME_FORMAT,
            "authority_id": authority_id,
            "database_url": url,
        }
        if rehearsal:
            body["rehearsal"] = True
        if time_zone:  # the zone people read times in (stored times stay UTC)
            body["time_zone"] = time_zone
        # Private: the database URL may carry a password.
        write_new_file(self.config_path, json.dumps(body, indent=2).encode() + b"\n", mode=0o600)

    def make_private(self) -> None:
        """Create the home folder (and its parents) if needed, then make the home 0700:
        sealed keys and the database are for the authority's account alone, whatever the
        umask, and a folder made beforehand by hand is tightened too."""
        try:
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.path.chmod(0o700)
        except OSError as e:
            raise StorageError(
                N_("cannot create {path} (mode 0700): {strerror}"),
                path=self.path,
                strerror=e.strerror,
            ) from e
