// Pure helpers of the courier page: bytes, base64, canonical JSON, DSSE, key ids, signed notes,
// RFC 9162 inclusion proofs. Every check follows docs/formats.md; nothing here touches the
// network, the DOM or storage.
import { ed, sha256 } from "/courier/vendor/crypto.js";

/** A refusal with the stable code the server would use for the same failure. */
export class Refusal extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

const enc = new TextEncoder();
export const utf8 = (s) => enc.encode(s);
export const fromUtf8 = (b) => new TextDecoder("utf-8", { fatal: true }).decode(b);

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

export const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

/** Standard base64 with padding; anything that does not re-encode to the same text is refused. */
export function b64decode(text, what = "base64") {
  let bin;
  try {
    bin = atob(text);
  } catch {
    throw new Refusal("format", `${what} is not base64`);
  }
  const out = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  if (b64encode(out) !== text) throw new Refusal("format", `${what} is not canonical base64`);
  return out;
}

export function b64encode(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

const byCodePoint = (a, b) => {
  const x = Array.from(a, (c) => c.codePointAt(0));
  const y = Array.from(b, (c) => c.codePointAt(0));
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
};

/** Canonical JSON (keys sorted by code point, no whitespace, non-ASCII as itself), as bytes. */
export function canonicalJson(value) {
  return utf8(canonicalText(value));
}

function canonicalText(v) {
  if (v === null || typeof v === "boolean" || typeof v === "string") return JSON.stringify(v);
  if (typeof v === "number") {
    if (!Number.isSafeInteger(v)) throw new Refusal("format", "only integers are canonical");
    return String(v);
  }
  if (Array.isArray(v)) return `[${v.map(canonicalText).join(",")}]`;
  const keys = Object.keys(v).sort(byCodePoint);
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalText(v[k])}`).join(",")}}`;
}

/** Parse JSON bytes that must already be canonical (events, leaves, login statements). */
export function parseCanonical(bytes, what) {
  let value;
  try {
    value = JSON.parse(fromUtf8(bytes));
  } catch {
    throw new Refusal("format", `${what} is not JSON`);
  }
  if (!equalBytes(canonicalJson(value), bytes)) {
    throw new Refusal("format", `${what} is not canonical JSON`);
  }
  return value;
}

export const sha256Bytes = (b) => sha256(b);

/** key id = hex(SHA-256("ed25519:" || raw public key)). */
export const keyId = (publicKey) => hex(sha256(concat(utf8("ed25519:"), publicKey)));

/** DSSE pre-authentication encoding. */
export function pae(payloadType, payload) {
  const t = utf8(payloadType);
  return concat(utf8(`DSSEv1 ${t.length} `), t, utf8(` ${payload.length} `), payload);
}

export function signEnvelope(payloadType, payload, signers) {
  const message = pae(payloadType, payload);
  return {
    payload: b64encode(payload),
    payloadType,
    signatures: signers.map((s) => ({ keyid: s.keyId, sig: b64encode(ed.sign(message, s.seed)) })),
  };
}

export const LOGIN_TYPE = "application/vnd.custody.login.v1+json";

/** Log in with an unlocked key (docs/formats.md, "Login statement and session token"): sign
 * the service's challenge (single use, bound to its origin) and answer the session
 * (`{token, subject, roles, ...}`). `call(path, init)` is the page's own API helper, answering
 * the parsed body or throwing the service's refusal. */
export async function logIn(call, key) {
  const ch = await call("/v1/login/challenge", { method: "POST" });
  const statement = { challenge: ch.challenge, key_id: key.keyId, origin: ch.origin, type: "custody.login.v1" };
  const envelope = signEnvelope(LOGIN_TYPE, canonicalJson(statement), [key]);
  return call("/v1/login", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(envelope) });
}

/** Verify an envelope signed by exactly one key; return its payload bytes. */
export function verifySingle(envelope, payloadType, publicKey, what) {
  if (!envelope || typeof envelope !== "object") throw new Refusal("format", `${what}: no envelope`);
  if (envelope.payloadType !== payloadType) {
    throw new Refusal("format", `${what} has payload type ${envelope.payloadType}`);
  }
  const sigs = envelope.signatures;
  if (!Array.isArray(sigs) || sigs.length !== 1) {
    throw new Refusal("signature", `${what} must carry exactly one signature`);
  }
  const payload = b64decode(envelope.payload, `${what} payload`);
  const id = keyId(publicKey);
  if (sigs[0].keyid && sigs[0].keyid !== id) {
    throw new Refusal("unknown_signer", `${what} is signed by another key (${sigs[0].keyid.slice(0, 16)}…)`);
  }
  const sig = b64decode(sigs[0].sig, `${what} signature`);
  if (sig.length !== 64 || !ed.verify(sig, pae(payloadType, payload), publicKey, { zip215: false })) {
    throw new Refusal("signature", `${what}: the signature does not verify`);
  }
  return payload;
}

/** Parse "YYYY-MM-DDTHH:MM:SSZ" to Unix seconds. */
export function parseTime(text) {
  if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/.test(text)) throw new Refusal("format", `bad time ${text}`);
  return Date.parse(text) / 1000;
}

export function formatTime(seconds) {
  return new Date(seconds * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** Verify a C2SP checkpoint note signed by the log key; return {origin, size, root}. */
export function verifyCheckpoint(note, origin, logKey) {
  const cut = note.lastIndexOf("\n\n");
  if (cut < 0 || !note.endsWith("\n")) throw new Refusal("format", "checkpoint is not a signed note");
  const text = note.slice(0, cut + 1);
  const keyHash = sha256(concat(utf8(origin), Uint8Array.of(0x0a, 0x01), logKey)).subarray(0, 4);
  let good = 0;
  for (const line of note.slice(cut + 2, -1).split("\n")) {
    const m = /^\u2014 (\S+) (\S+)$/.exec(line);
    if (!m) throw new Refusal("format", "checkpoint signature line is malformed");
    if (m[1] !== origin) continue; // a witness's cosignature: not this check's concern
    const raw = b64decode(m[2], "checkpoint signature");
    if (raw.length !== 68 || !equalBytes(raw.subarray(0, 4), keyHash)) continue;
    if (!ed.verify(raw.subarray(4), utf8(text), logKey, { zip215: false })) {
      throw new Refusal("signature", "the checkpoint's log signature does not verify");
    }
    good += 1;
  }
  if (good !== 1) throw new Refusal("unknown_signer", "the checkpoint is not signed by the log key");
  const lines = text.split("\n");
  if (lines[0] !== origin) throw new Refusal("format", `checkpoint origin ${lines[0]} is not ${origin}`);
  if (!/^(0|[1-9]\d*)$/.test(lines[1])) throw new Refusal("format", "checkpoint size is malformed");
  const root = b64decode(lines[2], "checkpoint root");
  if (root.length !== 32) throw new Refusal("format", "checkpoint root is not 32 bytes");
  return { origin, size: Number(lines[1]), root };
}

export const leafHash = (leaf) => sha256(concat(Uint8Array.of(0), leaf));
const nodeHash = (l, r) => sha256(concat(Uint8Array.of(1), l, r));

/** RFC 9162 2.1.3.2: does `proof` place the leaf at `index` in the tree of `size` with `root`? */
export function verifyInclusion(leaf, index, size, proof, root) {
  if (index >= size) return false;
  let fn = index;
  let sn = size - 1;
  let r = leafHash(leaf);
  for (const p of proof) {
    if (p.length !== 32 || sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && equalBytes(r, root);
}
