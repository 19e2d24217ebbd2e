// A package label (QR payload "CP1:") verified on the device, in the order of docs/formats.md
// "Verifier duties": text and Base45, bounded inflate, COSE_Sign1 structure, the sealer's
// signature against the cached trust bundle, only then the manifest's fields and rules, the
// sealer's standing at issued-at, and the label's own validity now.
import { cborDecode, cborEncode, ed } from "/courier/vendor/crypto.js";
import { Refusal, equalBytes, hex } from "./lib.js";
import { standing } from "./trust.js";

const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";
const MAX_TEXT = 1600;
const MAX_INFLATED = 2048;
const SEALER_ROLES = ["proposer", "printer"];

export function base45decode(text) {
  const vals = Array.from(text, (c) => {
    const v = ALPHABET.indexOf(c);
    if (v < 0) throw new Refusal("format", `label: character ${JSON.stringify(c)} is not Base45`);
    return v;
  });
  if (vals.length % 3 === 1) throw new Refusal("format", "label: dangling Base45 character");
  const out = [];
  for (let i = 0; i < vals.length; i += 3) {
    if (i + 2 < vals.length) {
      const n = vals[i] + vals[i + 1] * 45 + vals[i + 2] * 2025;
      if (n > 0xffff) throw new Refusal("format", "label: Base45 group above 65535");
      out.push(n >> 8, n & 0xff);
    } else {
      const n = vals[i] + vals[i + 1] * 45;
      if (n > 0xff) throw new Refusal("format", "label: Base45 pair above 255");
      out.push(n);
    }
  }
  return Uint8Array.from(out);
}

async function inflateCapped(body, format = "deflate") {
  const stream = new Blob([body]).stream().pipeThrough(new DecompressionStream(format));
  const reader = stream.getReader();
  const parts = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > MAX_INFLATED) {
        await reader.cancel();
        throw new Refusal("format", `label: inflates beyond ${MAX_INFLATED} bytes`);
      }
      parts.push(value);
    }
  } catch (e) {
    throw e instanceof Refusal ? e : new Refusal("format", "label: the zlib stream is broken or has trailing bytes");
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Whether the zlib stream `body` (inflated to `inflated`) has a bit set after its final
 * block's end, in the deflate data's last byte: such bits inflate to nothing, so one label
 * would have several texts (docs/formats.md, "Compression"). Deflate fills a byte from its
 * lowest bit up, so the padding is the highest bits: the highest set bit decides. Cleared, if
 * the data inflates to the same bytes it is padding; else it and every bit below carry data.
 */
async function paddingSet(body, inflated) {
  const data = body.subarray(2, body.length - 4);
  if (data.length === 0 || data[data.length - 1] === 0) return false;
  const last = data[data.length - 1];
  const cleared = Uint8Array.from(data);
  cleared[cleared.length - 1] = last ^ (1 << (31 - Math.clz32(last)));
  let again;
  try {
    again = await inflateCapped(cleared, "deflate-raw");
  } catch {
    return false;
  }
  return again.length === inflated.length && again.every((b, i) => b === inflated[i]);
}

const STRICT = { strict: true, rejectDuplicateMapKeys: true, useMaps: true, allowIndefinite: false, allowUndefined: false, allowBigInt: false };

function cbor(bytes, what, tags) {
  try {
    return cborDecode(bytes, { ...STRICT, tags: tags ?? [] });
  } catch (e) {
    throw new Refusal("format", `label: ${what} is not deterministic CBOR (${e.message})`);
  }
}

const isId = (s) => typeof s === "string" && /^[\p{L}\p{N}._-]+$/u.test(s) && [...s].length <= 64;
const isText = (s) => typeof s === "string" && [...s].length >= 1 && [...s].length <= 32 && !/[\p{Cc}\p{Cf}]/u.test(s);
const isUint = (n, lo, hi) => Number.isSafeInteger(n) && n >= lo && n <= hi;

function fields(m) {
  const keys = [...m.keys()];
  if (keys.length !== 15 || keys.some((k, i) => k !== i + 1)) {
    throw new Refusal("format", "manifest: keys must be exactly 1-15");
  }
  const g = (k) => m.get(k);
  const bad = (what) => {
    throw new Refusal("format", `manifest: ${what}`);
  };
  for (const k of [1, 2, 3, 4, 5]) if (!isId(g(k))) bad(`field ${k} is not an id`);
  if (!(g(6) instanceof Uint8Array) || g(6).length !== 32) bad("paper commitment is not 32 bytes");
  if (!isUint(g(7), 1, 10000)) bad("copy count out of range");
  if (!isUint(g(8), 1, 10000)) bad("bag size out of range");
  const seals = g(9);
  if (!Array.isArray(seals) || seals.length < 1 || seals.length > 16 || !seals.every(isId)) bad("seal serials");
  if (new Set(seals).size !== seals.length) bad("seal serials repeat");
  if (seals.length !== Math.ceil(g(7) / g(8))) {
    bad(`${g(7)} copies in bags of ${g(8)} need ${Math.ceil(g(7) / g(8))} seals, not ${seals.length}`);
  }
  const dest = g(10);
  if (!Array.isArray(dest) || dest.length !== 2 || !dest.every(isText)) bad("destination");
  const win = g(11);
  if (!Array.isArray(win) || win.length !== 2 || !win.every((n) => isUint(n, 0, 2 ** 53)) || win[0] >= win[1]) bad("opening window");
  const route = g(12);
  if (!Array.isArray(route) || route.length < 1 || route.length > 8) bad("route length");
  route.forEach((step, i) => {
    if (!Array.isArray(step) || step.length !== 2 || !isId(step[0]) || !isText(step[1])) bad("route step");
    if (i > 0 && route[i - 1][0] === step[0]) bad("route names one person twice in a row");
  });
  if (!isUint(g(13), 1, 3)) bad("classification");
  const issued = g(14);
  const expiry = g(15);
  if (!isUint(issued, 0, 2 ** 53) || !isUint(expiry, 0, 2 ** 53) || expiry <= issued) bad("issued-at / expiry");
  if (win[0] < issued) bad("opening window starts before issued-at");
  return {
    package_id: g(1), exam: g(2), session: g(3), position: g(4), paper: g(5),
    paper_commitment: hex(g(6)), copies: g(7), bag_size: g(8), seals,
    destination: { site: dest[0], room: dest[1] }, window: { start: win[0], end: win[1] },
    route: route.map(([person, place]) => ({ person, place })), classification: g(13),
    issued_at: issued, expiry,
  };
}

/**
 * Verify a label's text against `trust` at `now` (Unix seconds).
 * @returns {Promise<{manifest: object, sealer: object, authorityId: string}>}
 * @throws {Refusal} with the code the server uses for the same failure
 */
export async function verifyLabel(text, trust, now) {
  text = text.trim();
  if (text.length > MAX_TEXT) throw new Refusal("format", `label: longer than ${MAX_TEXT} characters`);
  const m = /^CP(\d+):/.exec(text);
  if (!m) throw new Refusal("format", "label: not a custody label (no CP1: prefix)");
  if (m[1] !== "1") throw new Refusal("format", `label: version CP${m[1]} is not supported`);
  let body = base45decode(text.slice(m[0].length));
  if (body[0] === 0x78) {
    const inflated = await inflateCapped(body);
    if (await paddingSet(body, inflated)) {
      throw new Refusal("format", "label: the compressed payload's last byte has bits set after its end");
    }
    body = inflated;
  } else if (body[0] !== 0xd2) throw new Refusal("format", "label: neither zlib nor COSE");
  const tags = [];
  tags[18] = (decode) => ({ cose: decode() });
  const outer = cbor(body, "COSE", tags);
  const cose = outer && outer.cose;
  if (!Array.isArray(cose) || cose.length !== 4) throw new Refusal("format", "label: not a COSE_Sign1");
  const [protectedBytes, unprotected, payload, signature] = cose;
  if (!(protectedBytes instanceof Uint8Array) || protectedBytes.length !== 13 ||
      !equalBytes(protectedBytes.subarray(0, 5), Uint8Array.of(0xa2, 0x01, 0x27, 0x04, 0x48))) {
    throw new Refusal("format", "label: the protected header is not {alg: EdDSA, kid}");
  }
  if (!(unprotected instanceof Map) || unprotected.size !== 0) throw new Refusal("format", "label: unprotected header not empty");
  if (!(payload instanceof Uint8Array) || !(signature instanceof Uint8Array) || signature.length !== 64) {
    throw new Refusal("format", "label: payload or signature malformed");
  }
  const kid = hex(protectedBytes.subarray(5));
  const candidates = trust.people.filter((p) => p.keyId.startsWith(kid));
  if (candidates.length === 0) throw new Refusal("unknown_signer", `label: no certified key has kid ${kid}`);
  const toSign = cborEncode(["Signature1", protectedBytes, new Uint8Array(0), payload]);
  const sealer = candidates.find((p) => ed.verify(signature, toSign, p.key, { zip215: false }));
  if (!sealer) throw new Refusal("signature", "label: the seal signature does not verify under any certified key");
  const decoded = cbor(payload, "manifest");
  if (!(decoded instanceof Map) || !equalBytes(cborEncode(decoded), payload)) {
    throw new Refusal("format", "manifest: not deterministically encoded");
  }
  const manifest = fields(decoded);
  if (!sealer.roles.some((r) => SEALER_ROLES.includes(r))) {
    throw new Refusal("role", `label: ${sealer.subject} holds no sealing role (proposer, printer)`);
  }
  // A label's compromise rule: once the revocation is in force now, whatever issued-at claims.
  const compromised = trust.revocations.find(
    (r) => r.keyId === sealer.keyId && r.reason === "key_compromise" && r.effectiveAt <= now);
  if (compromised) throw new Refusal("revoked", `label: ${sealer.subject}'s key was revoked as compromised`);
  const problem = standing(trust, sealer, manifest.issued_at, null);
  if (problem) throw problem;
  if (sealer.recusals) {
    const scope = [`exam:${manifest.exam}`, `position:${manifest.position}`, `package:${manifest.package_id}`];
    const hit = scope.find((s) => sealer.recusals.includes(s));
    if (hit) throw new Refusal("recused", `label: ${sealer.subject} is recused from ${hit}`);
  }
  if (now < manifest.issued_at) throw new Refusal("not_yet_valid", "label: issued later than this device's clock");
  if (now > manifest.expiry) throw new Refusal("expired", "label: expired");
  return { manifest, sealer, authorityId: trust.authority.id };
}
