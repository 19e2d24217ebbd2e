// A package's label and its seal event, built and signed in the sealer's browser, byte for byte
// as `custody package seal` builds them (labels/payload.py, labels/manifest.py,
// custody/packages.py seal_event_body; docs/formats.md "Package labels" and "The seal body"):
// the manifest as deterministic CBOR with integer keys, COSE_Sign1 signed with Ed25519 over
// Sig_structure, zlib at level 9 when it is shorter, Base45 under "CP1:"; then the seal event
// whose body names the label's SHA-256. Pure: no network, no DOM.
import { cborEncode, ed, sha256 } from "/courier/vendor/crypto.js";
import { deflate } from "/proposition/vendor/zlib.js";
import { canonicalJson, concat, formatTime, hex, signEnvelope, utf8 } from "/courier/lib.js";

export const EVENT_TYPE = "application/vnd.custody.event.v1+json";
export const CLASSES = { secret: 1, confidential: 2, "top-secret": 3 };
const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";

export function base45encode(bytes) {
  let out = "";
  for (let i = 0; i + 1 < bytes.length; i += 2) {
    let n = bytes[i] * 256 + bytes[i + 1];
    const c = n % 45; n = (n - c) / 45;
    const d = n % 45;
    out += ALPHABET[c] + ALPHABET[d] + ALPHABET[(n - d) / 45];
  }
  if (bytes.length % 2) {
    const n = bytes[bytes.length - 1];
    out += ALPHABET[n % 45] + ALPHABET[Math.floor(n / 45)];
  }
  return out;
}

/**
 * The manifest's CBOR (keys 1-15). `m`: {package_id, exam, session, position, paper,
 * commitment (32 bytes), copies, bag_size, seals, site, room, opens, closes (Unix seconds),
 * route [{person, place}], classification (slug), issued, expires (Unix seconds)}.
 */
export function manifestCbor(m) {
  return cborEncode(new Map([
    [1, m.package_id], [2, m.exam], [3, m.session], [4, m.position], [5, m.paper],
    [6, m.commitment], [7, m.copies], [8, m.bag_size], [9, [...m.seals]], [10, [m.site, m.room]],
    [11, [m.opens, m.closes]], [12, m.route.map((s) => [s.person, s.place])],
    [13, CLASSES[m.classification]], [14, m.issued], [15, m.expires],
  ]));
}

/** The label text: COSE_Sign1 by `key` ({seed, keyId}), zlib when shorter, Base45, "CP1:". */
export function sealManifest(m, key) {
  const payload = manifestCbor(m);
  const kid = Uint8Array.from(key.keyId.slice(0, 16).match(/../g), (h) => parseInt(h, 16));
  const protectedHeader = cborEncode(new Map([[1, -8], [4, kid]]));
  const toSign = cborEncode(["Signature1", protectedHeader, new Uint8Array(0), payload]);
  const signature = ed.sign(toSign, key.seed);
  const cose = concat(Uint8Array.of(0xd2), cborEncode([protectedHeader, new Map(), payload, signature]));
  const packed = deflate(cose, { level: 9 });
  return "CP1:" + base45encode(packed.length < cose.length ? packed : cose);
}

/** The seal event's payload (canonical JSON bytes), as custody/package_service.py makes it. */
export function sealEventPayload(m, label, sealer, authority, handoverWitness) {
  const steps = m.route.length && m.route[0].person === sealer ? m.route.slice(1) : m.route;
  return canonicalJson({
    type: "custody.event.v1",
    kind: "seal",
    authority,
    time: formatTime(m.issued),
    place: m.route.length ? m.route[0].place : "",
    packages: { [m.package_id]: null },
    actors: { sealer },
    body: {
      exam: m.exam,
      session: m.session,
      position: m.position,
      paper: m.paper,
      paper_commitment: hex(m.commitment),
      copies: m.copies,
      seals: [...m.seals],
      window: { start: formatTime(m.opens), end: formatTime(m.closes) },
      route: steps.map((s) => s.person),
      places: steps.map((s) => s.place),
      destination: { site: m.site, room: m.room },
      classification: m.classification,
      handover_witness: handoverWitness,
      label_sha256: hex(sha256(utf8(label))),
    },
    corrects: null,
  });
}

/** The label and the sealer's signed seal event: what POST /v1/packages takes. */
export function sealPackage(m, key, { sealer, authority, handoverWitness }) {
  const label = sealManifest(m, key);
  const seal = signEnvelope(EVENT_TYPE, sealEventPayload(m, label, sealer, authority, handoverWitness), [key]);
  return { label, seal };
}
