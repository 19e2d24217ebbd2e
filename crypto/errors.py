"""One error hierarchy for every layer.

It lives in ``crypto`` (the ground floor) so that every layer above can raise it without
importing upward; ``custody.errors`` re-exports it unchanged.

Rules:
- Every failure a caller must tell apart has its own class; callers and tests match on the
  class (or its stable ``code``), never on message text.
- A message names what is wrong for the person at the terminal; it never contains a secret.
- Decryption failures are detail-free on purpose: wrong key, wrong passphrase and a flipped
  byte all look the same to the caller (as pyca's Fernet ``InvalidToken``).
- The CLI maps ``exit_code`` and the HTTP layer maps ``http_status`` in one place each.
- A message is a template and its parameters: ``raise ChainError(N_("event names previous
  {previous}"), previous=p)``. The template is the English text and the catalogue's message id
  (``N_`` marks it for scripts/i18n_catalogue.py; it returns its argument). ``str(err)`` and
  ``err.message`` are the English text (for logs and for tests); the edges (the CLI by the
  locale, the API by ``Accept-Language``) show it in the reader's language with
  ``err.render(gettext)`` (``custody.i18n.error_text``). A hint is a template too, filled from
  the same parameters. Without parameters the template is used as it is (no ``{}`` filling).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


def N_(message: str) -> str:  # noqa: N802 - gettext's conventional name for "mark, do not translate"
    """Mark ``message`` as a message id (English) to translate where it is shown."""
    return message


class Phrase(str):
    """A parameter that is itself a message id (English), translated where the message is
    shown: ``raise UsageError(N_("--to: name {what}"), what=Phrase("who receives it"))``."""

    __slots__ = ()


# The separators of the lists ``Words.listed`` makes, as message ids (translated where shown).
LIST_SEPARATORS = (N_(", "), N_(","), N_("/"))


class Words(str):
    """A parameter that is a phrase of its own (a person with their roles, a signer slot): the
    string is its English, ``said`` renders it in the reader's language. Being a string, it
    joins, compares and formats as the English does (``Certificate.describe``)."""

    said: Said

    def __new__(cls, english: str, said: Said | None = None) -> Words:
        words = super().__new__(cls, english)
        words.said = said if said is not None else Said(english)
        return words

    @classmethod
    def of(cls, said: Said) -> Words:
        return cls(said.english, said)

    @classmethod
    def joined(cls, names: Iterable[str], sep: str) -> Words:
        """Names (message ids: role or slot codes) joined by ``sep``, each translated."""
        return cls.listed((Phrase(name) for name in names), sep)

    @classmethod
    def listed(cls, parts: Iterable[object], sep: str) -> Words:
        """Parts joined by ``sep``, each rendered as a parameter is (``Phrase``, ``Words``,
        ``Said``, a refusal, or shown as it is)."""
        params = {f"w{i}": part for i, part in enumerate(parts)}
        return cls.of(Said(sep.join("{" + k + "}" for k in params), params, sep=sep))

    def __reduce__(self) -> tuple[object, ...]:  # errors cross processes (api.writer_link)
        return (Words, (str(self), self.said))


def _fill(template: str, params: Mapping[str, object]) -> str:
    return template.format_map(params) if params else template


@dataclass(frozen=True)
class Said:
    """A sentence the service writes for people (an incident's detail, a finding): its
    template (an ``N_`` message id) and parameters, so that each reader gets it in their own
    language; ``english`` is what logs and JSON's ``detail`` keep."""

    template: str
    params: Mapping[str, object] = field(default_factory=dict)
    # a list (``Words.listed``): its parts joined by ``sep``, which is translated too (a
    # Chinese list reads 押运员、保管员, not 押运员,保管员)
    sep: str | None = None

    @property
    def english(self) -> str:
        params = {k: v.english if isinstance(v, Said) else v for k, v in self.params.items()}
        try:
            return _fill(self.template, params)
        except (KeyError, IndexError, ValueError, AttributeError):
            return self.template

    def __str__(self) -> str:
        return self.english

    def __format__(self, spec: str) -> str:
        return format(self.english, spec)

    def render(self, translate: Callable[[str], str]) -> str:
        """The sentence through ``translate`` (a catalogue's ``gettext``), ``Phrase``
        parameters translated and ``Said`` or ``CustodyError`` parameters rendered too; a
        translation that does not fit falls back to English."""
        params = {
            k: (
                translate(v)
                if isinstance(v, Phrase)
                else v.said.render(translate)
                if isinstance(v, Words)
                else v.render(translate)
                if isinstance(v, Said)
                else v.render(translate)[0]
                if isinstance(v, CustodyError)
                else v
            )
            for k, v in self.params.items()
        }
        if self.sep is not None:
            sep = translate(self.sep) if self.sep else ""  # (gettext("") is the header)
            return sep.join(str(params[k]) for k in self.params)
        try:
            return _fill(translate(self.template), params)
        except (KeyError, IndexError, ValueError, AttributeError):
            return self.english


class CustodyError(Exception):
    """Root of every error the product raises on purpose."""

    code = "custody_error"
    exit_code = 1
    http_status = 400

    def __init__(self, message: str, *, hint: str | None = None, **params: Any) -> None:
        self.template = message
        self.hint_template = hint
        self.params = params
        self.message = _fill(message, params)
        self.hint = None if hint is None else _fill(hint, params)
        super().__init__(self.message)

    def render(self, translate: Callable[[str], str]) -> tuple[str, str | None]:
        """(message, hint) with the templates passed through ``translate`` (a catalogue's
        ``gettext``); a parameter that is itself a ``CustodyError`` is rendered the same way,
        a ``Phrase`` is translated.
        A translation that does not fit its parameters falls back to the English text."""
        params = {
            k: (
                v.render(translate)[0]
                if isinstance(v, CustodyError)
                else translate(v)
                if isinstance(v, Phrase)
                else v.said.render(translate)
                if isinstance(v, Words)
                else v.render(translate)
                if isinstance(v, Said)
                else v
            )
            for k, v in self.params.items()
        }

        def one(template: str, english: str) -> str:
            try:
                return _fill(translate(template), params)
            except (KeyError, IndexError, ValueError, AttributeError):
                return english

        message = one(self.template, self.message)
        hint = None
        if self.hint_template is not None and self.hint is not None:
            hint = one(self.hint_template, self.hint)
        return message, hint

    def diagnostics(self) -> str:
        """A multi-line explanation for a terminal."""
        text = f"{self.message}"
        if self.hint:
            text += f"\nhint: {self.hint}"
        return text

    def as_dict(self) -> dict[str, str]:
        body = {"error": self.code, "message": self.message}
        if self.hint:
            body["hint"] = self.hint
        return body


class UsageError(CustodyError):
    """The command or request itself is wrong (a missing option, a bad value)."""

    code = "usage"
    exit_code = 2


class WeakPassphraseError(UsageError):
    """A new passphrase too short to protect a sealed key."""

    code = "weak_passphrase"


class FormatError(CustodyError):
    """Untrusted bytes could not be parsed into a domain value."""

    code = "format"
    exit_code = 3


class NotFoundError(CustodyError):
    """Nothing of that name: no such entry, package, checkpoint, authority or file."""

    code = "not_found"
    exit_code = 4
    http_status = 404


class ConflictError(CustodyError):
    """The request conflicts with what is already stored (a used folder, a duplicate id)."""

    code = "conflict"
    exit_code = 5
    http_status = 409


class StorageError(CustodyError):
    """The database failed or refused a read or a write; nothing half-done is kept."""

    code = "storage"
    exit_code = 6
    http_status = 503


class ShredIncompleteError(StorageError):
    """A destruction is recorded and its keys deleted, but the database may still hold a copy.

    An old read snapshot kept SQLite from truncating its write-ahead log, or PostgreSQL's
    VACUUM from removing old row versions, or a file still contains a destroyed blob. Running
    the destruction again repeats only the erase and its check.
    """

    code = "shred_incomplete"


class VerificationError(CustodyError):
    """Base of every failed trust check: signatures, roles, certificates, chains, rules."""

    code = "verification"
    exit_code = 10
    http_status = 422


class SignatureError(VerificationError):
    """A signature does not verify, or a key is not acceptable for signing."""

    code = "signature"


class WeakKeyError(SignatureError):
    """A public key is small-order or non-canonically encoded."""

    code = "weak_key"


class UnknownSignerError(VerificationError):
    """A signature by a key that no certificate of this authority binds."""

    code = "unknown_signer"


class IssuerError(VerificationError):
    """A certificate or bundle not issued by this authority's root key."""

    code = "issuer"


class DuplicateSignatureError(VerificationError):
    """The same key (or the same person) signed one statement more than once."""

    code = "duplicate_signature"


class ThresholdError(VerificationError):
    """A required signer is missing."""

    code = "threshold"


class MixedPackagesError(VerificationError):
    """One statement names packages whose policies need different signers."""

    code = "mixed_packages"


class ExamPolicyError(VerificationError):
    """A seal that does not follow its exam's policy on the log, or names an exam that has
    no policy there."""

    code = "exam_policy"


class RoleError(VerificationError):
    """A signer does not hold the role the step requires."""

    code = "role"
    http_status = 403


class RecusedError(RoleError):
    """A signer is withdrawn (conflict of interest) from this exam or position."""

    code = "recused"


class RevokedError(VerificationError):
    """A key revoked before the statement's time, or for compromise before it was received."""

    code = "revoked"


class ExpiredError(VerificationError):
    """A certificate or manifest is outside its validity window (expired or not yet valid)."""

    code = "expired"


class NotYetValidError(ExpiredError):
    """A certificate or manifest used before its validity starts."""

    code = "not_yet_valid"


class ChainError(VerificationError):
    """An event does not link to its package's previous event, or breaks the state machine."""

    code = "chain"
    http_status = 409


class RouteError(VerificationError):
    """A holder who is not the planned next one."""

    code = "route"
    http_status = 403


class ClockError(VerificationError):
    """A statement dated too far from when the log received it (the log's clock decides)."""

    code = "clock"


class WindowError(VerificationError):
    """An act outside its time window (opening before or after the window)."""

    code = "window"
    http_status = 403


class SealMismatchError(VerificationError):
    """Seal serials seen differ from the sealed ones (a finding on an accepted event)."""

    code = "seal_mismatch"


class CountMismatchError(VerificationError):
    """Copies counted differ from copies handed out (a finding on an accepted event)."""

    code = "count_mismatch"


class FrozenError(VerificationError):
    """A package under containment accepts only a move into secure custody."""

    code = "frozen"
    http_status = 423


class ClosedError(ChainError):
    """Any act after destruction."""

    code = "closed"


class LogConsistencyError(VerificationError):
    """Two checkpoints or proofs that cannot both be true."""

    code = "log_consistency"


class DecryptionError(CustodyError):
    """Detail-free on purpose: wrong key, wrong passphrase or altered ciphertext."""

    code = "decryption"
    exit_code = 11
    http_status = 422

    def __init__(
        self, message: str = N_("decryption failed: wrong key or altered data"), **params: Any
    ) -> None:
        super().__init__(message, **params)


class PassphraseError(DecryptionError):
    def __init__(
        self, message: str = N_("wrong passphrase, or the key file was altered"), **params: Any
    ) -> None:
        super().__init__(message, **params)


class KeyBlockedError(VerificationError):
    """A key the incident system blocked as suspect, until a secrecy officer decides."""

    code = "blocked_key"
    http_status = 403

    def __init__(
        self,
        message: str,
        *,
        key_ids: tuple[str, ...] = (),
        hint: str | None = None,
        **params: Any,
    ) -> None:
        super().__init__(message, hint=hint, **params)
        self.key_ids = key_ids


class LoginRequiredError(CustodyError):
    """A read that needs a login came without a valid session token (none, expired, or its
    key revoked or expired since): log in again."""

    code = "login_required"
    exit_code = 12
    http_status = 401


class LoginError(LoginRequiredError):
    """A login attempt refused: unknown, used or expired challenge, wrong origin, or a
    signature that is not by the named enrolled key."""

    code = "login_failed"


class ForbiddenError(CustodyError):
    """The logged-in person's roles and assignments do not cover what they asked to read."""

    code = "forbidden"
    exit_code = 13
    http_status = 403


class RateLimitError(CustodyError):
    """Too many requests from one address or one key within the window; retry later."""

    code = "rate_limited"
    exit_code = 14
    http_status = 429


class MediaTypeError(UsageError):
    """A request body of a Content-Type the route does not accept."""

    code = "unsupported_media_type"
    http_status = 415


class RequestTimeoutError(UsageError):
    """A request body that did not arrive within the service's body timeout."""

    code = "request_timeout"
    http_status = 408


class ImageTooLargeError(FormatError):
    """An image whose header promises more pixels than the service decodes."""

    code = "image_too_large"
    http_status = 413


class DatabaseUnavailableError(StorageError):
    """The database cannot be reached (stopped, refused, timed out): an outage, not a bug."""

    code = "db_unavailable"


class DatabaseReadOnlyError(StorageError):
    """The database (or the disk under it) refuses writes: a read-only file, mount or standby."""

    code = "db_read_only"


class DatabaseFullError(StorageError):
    """The disk under the database is full (or its quota is spent)."""

    code = "db_full"


class DatabaseCorruptError(StorageError):
    """The database file is not a database, or its pages are malformed."""

    code = "db_corrupt"


class SchemaBehindError(StorageError):
    """The database's schema is not the one this version of custody needs."""

    code = "db_schema"


class LogStateError(StorageError):
    """The log's stored state disagrees with a checkpoint its key signed.

    A lost write, a zeroed node, a deleted row: the log refuses to sign anything over it."""

    code = "log_state"
