// A person's key file (docs/formats.md "Key file") unlocked in the page: Argon2id (hash-wasm)
// derives the key from the passphrase, XChaCha20-Poly1305 (@noble/ciphers) opens the seeds with
// the canonical header as associated data, and the Ed25519 public key derived from the seed must
// be the file's. The seed lives only in this page's memory; nothing here stores it.
import { argon2id, ed, xchacha20poly1305 } from "/courier/vendor/crypto.js";
import { Refusal, b64decode, canonicalJson, equalBytes, fromUtf8, keyId, utf8 } from "./lib.js";

const MIB = 1024 * 1024;

/** Unlock `text` (the key file's contents) with `passphrase`; returns {label, seed, publicKey, keyId}. */
export async function unlockKeyFile(text, passphrase) {
  let file;
  try {
    file = JSON.parse(text);
  } catch {
    throw new Refusal("format", "the key file is not JSON");
  }
  const { format, label, kdf, aead, ciphertext } = file ?? {};
  if (format !== "custody-keyfile/v1") throw new Refusal("format", "not a custody key file (custody-keyfile/v1)");
  if (kdf?.alg !== "argon2id13" || aead?.alg !== "xchacha20poly1305-ietf") {
    throw new Refusal("format", "the key file names an algorithm this page does not use");
  }
  if (typeof file.public?.ed25519 !== "string") throw new Refusal("format", "the key file has no public key");
  const expected = b64decode(file.public.ed25519, "public key");
  const sealed = b64decode(ciphertext, "ciphertext");
  const salt = b64decode(kdf.salt, "salt");
  const nonce = b64decode(aead.nonce, "nonce");
  // Out-of-range costs, salts and nonces fail like a wrong passphrase: detail-free on purpose.
  const opaque = () => new Refusal("decryption", "wrong passphrase, or the key file was altered");
  if (!Number.isInteger(kdf.opslimit) || kdf.opslimit < 1 || kdf.opslimit > 16 ||
      !Number.isInteger(kdf.memlimit) || kdf.memlimit < 8192 || kdf.memlimit > 1024 * MIB || kdf.memlimit % 1024) {
    throw opaque();
  }
  if (salt.length !== 16 || nonce.length !== 24) throw opaque();
  const header = { ...file };
  delete header.ciphertext;
  const key = await argon2id({
    password: utf8(passphrase),
    salt,
    parallelism: 1,
    iterations: kdf.opslimit,
    memorySize: kdf.memlimit / 1024,
    hashLength: 32,
    outputType: "binary",
  });
  let plain;
  try {
    plain = xchacha20poly1305(key, nonce, canonicalJson(header)).decrypt(sealed);
  } catch {
    // A wrong passphrase and an altered byte are one error, as the format says.
    throw opaque();
  } finally {
    key.fill(0);
  }
  const secrets = JSON.parse(fromUtf8(plain));
  plain.fill(0);
  const seed = b64decode(secrets.ed25519_seed, "seed");
  const publicKey = ed.getPublicKey(seed);
  if (!equalBytes(publicKey, expected)) {
    seed.fill(0);
    throw new Refusal("format", "the key file's public key is not its seed's");
  }
  return { label, seed, publicKey, keyId: keyId(publicKey) };
}
