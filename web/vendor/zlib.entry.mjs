// zlib's deflate (pako, a line-by-line port of zlib) for the proposition page: a label's
// COSE_Sign1 is compressed at level 9 exactly as Python's zlib.compress(cose, 9) does
// (labels/payload.py), so a label signed in the browser is byte for byte the CLI's.
export { deflate } from "pako";
