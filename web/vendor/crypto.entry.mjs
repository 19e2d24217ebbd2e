// What the courier's page needs from audited libraries, bundled into one ES module.
export { argon2id } from "hash-wasm";
export { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import * as ed from "@noble/ed25519";
import { sha256, sha512 } from "@noble/hashes/sha2.js";
ed.hashes.sha512 = sha512;
export { ed, sha256 };
export { decode as cborDecode, encode as cborEncode } from "cborg";
// crypto_box_seal for notes sealed to the secrecy officers (X25519 itself is WebCrypto's):
// HSalsa20 for the box key, XSalsa20-Poly1305 for the box, BLAKE2b for its nonce.
export { hsalsa, xsalsa20poly1305 } from "@noble/ciphers/salsa.js";
export { blake2b } from "@noble/hashes/blake2.js";
