// What the proposition centre's page needs from libsodium itself (libsodium.js, the wasm build
// of the C library, embedded): secretstream XChaCha20-Poly1305 for the encrypted paper file and
// crypto_box_seal for the sealed parts of its key, byte for byte as crypto/stream.py and
// crypto/sealing.py write them.
import sodium from "libsodium-wrappers";
export default sodium;
