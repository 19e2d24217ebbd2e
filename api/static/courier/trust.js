// The trust bundle a device caches at login, verified on the device (docs/formats.md "Trust
// bundle" and "The directory"): the authority statement under the root key it names (pinned on
// first use, compared ever after), then the directory under the system key (or, for secrecy
// officers and auditors, every certificate under the root key), then each revocation.
import { Refusal, b64decode, concat, fromUtf8, hex, keyId, parseTime, sha256Bytes, utf8, verifySingle } from "./lib.js";

const T = "application/vnd.custody.";
const AUTHORITY = `${T}authority.v1+json`;
const DIRECTORY = `${T}directory.v1+json`;
const CERTIFICATE = `${T}certificate.v1+json`;
const REVOCATION = `${T}revocation.v1+json`;

const json = (bytes, what) => {
  try {
    return JSON.parse(fromUtf8(bytes));
  } catch {
    throw new Refusal("format", `${what} is not JSON`);
  }
};

function selfSignedAuthority(envelope) {
  let claimed;
  try {
    claimed = JSON.parse(fromUtf8(b64decode(envelope.payload, "authority payload")));
  } catch (e) {
    throw e instanceof Refusal ? e : new Refusal("format", "authority statement is not JSON");
  }
  const rootKey = b64decode(claimed.root_key, "root key");
  const body = json(verifySingle(envelope, AUTHORITY, rootKey, "authority statement"), "authority");
  if (body.type !== "custody.authority.v1") throw new Refusal("format", "not an authority statement");
  return {
    id: keyId(rootKey),
    name: body.name,
    rootKey,
    logKey: b64decode(body.log_key, "log key"),
    systemKey: b64decode(body.system_key, "system key"),
    logOrigin: body.log_origin,
  };
}

/** Verify a bundle as served at /v1/trust-bundle; `pin` is the authority id seen first. */
export function verifyBundle(bundle, pin) {
  const authority = selfSignedAuthority(bundle.authority);
  if (pin && pin !== authority.id) {
    throw new Refusal("issuer", `this bundle is of authority ${authority.id.slice(0, 16)}…, not the pinned ${pin.slice(0, 16)}…`);
  }
  let people;
  let issuedAt = null;
  if (bundle.directory) {
    const d = json(verifySingle(bundle.directory, DIRECTORY, authority.systemKey, "directory"), "directory");
    if (d.type !== "custody.directory.v1" || d.authority !== authority.id) {
      throw new Refusal("issuer", "the directory is not this authority's");
    }
    issuedAt = d.issued_at;
    people = d.people.map((p) => person(p.subject, p.name, p.roles, p.signing_key, p.not_before, p.not_after, null));
  } else if (Array.isArray(bundle.certificates)) {
    people = bundle.certificates.map((env) => {
      const c = json(verifySingle(env, CERTIFICATE, authority.rootKey, "certificate"), "certificate");
      if (c.type !== "custody.certificate.v1" || c.authority !== authority.id) {
        throw new Refusal("issuer", "a certificate is not this authority's");
      }
      const who = person(c.subject, c.name, c.roles, c.signing_key.key, c.not_before, c.not_after, c.recusals ?? []);
      if (c.encryption_key?.alg === "x25519") {
        // Whom a note is sealed to (the console's acts): the X25519 key and its documented id.
        who.encryptionKey = b64decode(c.encryption_key.key, "encryption key");
        if (who.encryptionKey.length !== 32) throw new Refusal("format", `encryption key of ${c.subject} is not 32 bytes`);
        who.encryptionKeyId = hex(sha256Bytes(concat(utf8("x25519:"), who.encryptionKey)));
      }
      return who;
    });
  } else {
    throw new Refusal("format", "the bundle has neither a directory nor certificates");
  }
  const revocations = (bundle.revocations ?? []).map((env) => {
    const r = json(verifySingle(env, REVOCATION, authority.rootKey, "revocation"), "revocation");
    if (r.type !== "custody.revocation.v1" || r.authority !== authority.id) {
      throw new Refusal("issuer", "a revocation is not this authority's");
    }
    return { keyId: r.key_id, effectiveAt: parseTime(r.effective_at), issuedAt: parseTime(r.issued_at), reason: r.reason };
  });
  return { authority, people, revocations, issuedAt };
}

function person(subject, name, roles, key, notBefore, notAfter, recusals) {
  const raw = typeof key === "string" ? b64decode(key, "signing key") : key;
  if (raw.length !== 32) throw new Refusal("format", `signing key of ${subject} is not 32 bytes`);
  return {
    subject,
    name,
    roles,
    key: raw,
    keyId: keyId(raw),
    notBefore: parseTime(notBefore),
    notAfter: parseTime(notAfter),
    recusals, // null: the directory does not carry them (checked by the log, not here)
  };
}

/**
 * Why `who` may not sign a statement dated `t` and received at `now` (Unix seconds), or null.
 * A key revoked for compromise is refused for everything received once the revocation was
 * issued (`now` null: that rule is the caller's, as for labels).
 */
export function standing(trust, who, t, now) {
  if (t < who.notBefore) return new Refusal("not_yet_valid", `${who.subject}'s certificate is not yet valid at that time`);
  if (t > who.notAfter) return new Refusal("expired", `${who.subject}'s certificate had expired at that time`);
  for (const r of trust.revocations) {
    if (r.keyId !== who.keyId) continue;
    if (now !== null && r.reason === "key_compromise" && r.issuedAt <= now) {
      return new Refusal("revoked", `${who.subject}'s key was revoked as compromised`);
    }
    if (r.effectiveAt <= t) return new Refusal("revoked", `${who.subject}'s key was revoked (${r.reason})`);
  }
  return null;
}

/** The bundle in a form IndexedDB stores (keys as base64 kept in the raw bundle instead). */
export const personBySubject = (trust, subject) => trust.people.find((p) => p.subject === subject);
